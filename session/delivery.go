package session

import (
	"context"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
)

// Client-side delivery to a Handler is a kit.Serial in Adaptive mode:
// each instance starts with a delivery goroutine that reads its inbox and
// calls the Handler, so a slow handler delays only its own channel until
// its inbox fills (docs/design.md); once the handler has returned within
// kit.InlineBudget kit.PromoteAfter times in a row and its inbox is
// empty, messages are delivered on the receiving goroutine itself
// (Receive), saving one cross-thread wake-up per message. The limit:
// while an inline Received runs, every channel of the connection waits
// for it.
type delivery struct{ s *kit.Serial }

// newDelivery sets up ch's delivery over its inbox. The goroutine that
// accepts ch becomes its first delivery goroutine (kit.Serial.Run).
func (c *Client) newDelivery(ch *channel) {
	ch.client = c
	ch.d.s = kit.NewSerial(kit.SerialConfig{Mode: kit.Adaptive, Inbox: ch.in, Group: &c.wg})
}

// deliverClient hands msg (now the Serial's) to ch's Handler. It blocks
// while the inbox is full: DRDYNVC has no other flow control.
func (c *Client) deliverClient(ch *channel, msg []byte) error {
	err := ch.d.s.Put(context.Background(), msg)
	if err != nil && err != dvc.ErrClosed {
		return err
	}
	return nil // a channel closed meanwhile drops the message
}

// endClient runs after ch's inbox was closed: Closed is due, after what
// the inbox still holds.
func (c *Client) endClient(ch *channel) { ch.d.s.End(nil) }
