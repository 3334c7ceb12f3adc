package trace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/loopback"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoHandler echoes every message, then closes after n.
type echoHandler struct {
	ch   dvc.Channel
	n    int
	seen int
	done chan struct{}
}

func (h *echoHandler) Received(msg []byte) {
	_ = h.ch.Write(context.Background(), msg)
	h.seen++
	if h.seen == h.n {
		h.ch.Close()
	}
}
func (h *echoHandler) Closed(error) { close(h.done) }

// TestRecordBothSides traces one channel from both ends at once over the
// in-process backend: the server's Opener and the client's Registrar
// must each record the open, both messages each way and the close, with
// who sent each.
func TestRecordBothSides(t *testing.T) {
	hub := loopback.New()
	defer hub.Close()
	var sbuf, cbuf bytes.Buffer
	srec, crec := New(&sbuf, Server), New(&cbuf, Client)
	done := make(chan struct{})
	err := crec.Registrar(hub).Listen("t::echo", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		return &echoHandler{ch: ch, n: 2, done: done}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := srec.Opener(hub).Open(ctx, "t::echo")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"one", "two"} {
		if err := c.Write(ctx, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Read(ctx); err != nil || string(got) != m {
			t.Fatalf("read %q, %v", got, err)
		}
	}
	if _, err := c.Read(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after the client's close: %v, want io.EOF", err)
	}
	c.Close()
	<-done
	want := []string{"open server", "data server one", "data client one", "data server two", "data client two", "close client"}
	for _, tc := range []struct {
		name string
		buf  *bytes.Buffer
	}{{"server", &sbuf}, {"client", &cbuf}} {
		var got []string
		for _, e := range readAll(t, tc.buf) {
			if e.Channel != "t::echo" || e.Time.IsZero() {
				t.Errorf("%s: %+v", tc.name, e)
			}
			s := string(e.Kind) + " " + string(e.From)
			if len(e.Data) > 0 {
				s += " " + string(e.Data)
			}
			got = append(got, s)
		}
		if strings.Join(got, ", ") != strings.Join(want, ", ") {
			t.Errorf("%s side recorded\n  %s\nwant\n  %s", tc.name, strings.Join(got, ", "), strings.Join(want, ", "))
		}
	}
}

func TestRecordRefusal(t *testing.T) {
	hub := loopback.New()
	defer hub.Close()
	var buf bytes.Buffer
	rec := New(&buf, Server)
	if _, err := rec.Opener(hub).Open(context.Background(), "nobody"); err == nil {
		t.Fatal("open of a name nobody listens on succeeded")
	}
	e, err := NewReader(&buf).Next()
	if err != nil || e.Kind != Refuse || e.Channel != "nobody" || e.Status == 0 {
		t.Fatalf("%+v, %v", e, err)
	}
}

func TestConcurrentRecordsStayWhole(t *testing.T) {
	var buf bytes.Buffer
	rec := New(&buf, Server)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				rec.Record(Event{Kind: Data, From: Server, Channel: "c", ID: uint32(i), Data: bytes.Repeat([]byte{byte(i)}, 100)})
			}
		}()
	}
	wg.Wait()
	if n := len(readAll(t, &buf)); n != 800 {
		t.Fatalf("%d records, want 800", n)
	}
}

func TestParseNamesTheField(t *testing.T) {
	for line, field := range map[string]string{
		`{"event":"poke","from":"server","channel":"c"}`:                     "record.event",
		`{"event":"data","from":"nobody","channel":"c"}`:                     "record.from",
		`{"event":"data","from":"server","channel":""}`:                      "record.channel",
		`{"event":"data","from":"server","channel":"c","len":3,"data":"00"}`: "record.len",
		`{"event":"data","from":"server","channel":"c","data":"zz"}`:         "data",
		`not json`: "record",
	} {
		if _, err := Parse([]byte(line)); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want an error naming %s", line, err, field)
		}
	}
}

func TestRecorderStopsAtTheFirstWriteError(t *testing.T) {
	rec := New(failWriter{}, Client)
	rec.Record(Event{Kind: Data, From: Client, Channel: "c"})
	rec.Record(Event{Kind: Data, From: Client, Channel: "c"})
	if err := rec.Err(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Err = %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"time":"2026-12-07T20:00:00Z","from":"server","event":"data","channel":"ECHO","id":3,"len":2,"data":"6869"}`))
	f.Add([]byte(`{"from":"client","event":"refuse","channel":"x","status":3221225473}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		if e.Len != len(e.Data) {
			t.Fatalf("accepted len %d with %d bytes", e.Len, len(e.Data))
		}
	})
}

// A listener that returns neither a Handler nor an error refuses, as
// kit.Accept has it, instead of handing the backend a nil Handler.
func TestRegistrarNilHandlerRefuses(t *testing.T) {
	hub := loopback.New()
	defer hub.Close()
	var buf bytes.Buffer
	rec := New(&buf, Client)
	if err := rec.Registrar(hub).Listen("t::nil", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, nil })); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Open(context.Background(), "t::nil"); err == nil {
		t.Fatal("open accepted by a listener that returned no Handler")
	}
	if e, err := NewReader(&buf).Next(); err != nil || e.Kind != Refuse {
		t.Fatalf("recorded %+v, %v; want a refusal", e, err)
	}
}

type terminator struct {
	dvc.Registrar
	fs []func()
}

func (t *terminator) OnTerminate(f func()) { t.fs = append(t.fs, f) }

// The wrapper keeps a registrar's OnTerminate hook (freerdp.Host's).
func TestRegistrarForwardsOnTerminate(t *testing.T) {
	hub := loopback.New()
	defer hub.Close()
	inner := &terminator{Registrar: hub}
	reg := New(io.Discard, Client).Registrar(inner)
	ot, ok := reg.(interface{ OnTerminate(func()) })
	if !ok {
		t.Fatal("the trace registrar hides OnTerminate")
	}
	called := false
	ot.OnTerminate(func() { called = true })
	if len(inner.fs) != 1 {
		t.Fatalf("OnTerminate not passed on: %d", len(inner.fs))
	}
	inner.fs[0]()
	if !called {
		t.Fatal("the hook did not run")
	}
}

// A line over MaxLine is reported as a RecordError naming its line, and
// the reader goes on with the records after it instead of stopping.
func TestReaderSkipsOverlongLine(t *testing.T) {
	good := `{"time":"2026-12-07T20:00:00Z","from":"server","event":"data","channel":"ECHO","id":3,"len":1,"data":"68"}`
	in := good + "\n" + strings.Repeat("x", MaxLine+10) + "\n" + good + "\r\n" + good // the last without a newline
	r := NewReader(strings.NewReader(in))
	var kinds []string
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		var re *RecordError
		switch {
		case errors.As(err, &re):
			if re.Line != 2 || !errors.Is(err, ErrLineTooLong) {
				t.Fatalf("error %v (line %d), want line 2 too long", err, re.Line)
			}
			kinds = append(kinds, "long")
		case err != nil:
			t.Fatalf("Next: %v (not a RecordError: reading stopped)", err)
		default:
			kinds = append(kinds, string(e.Kind))
		}
	}
	if got := strings.Join(kinds, ","); got != "data,long,data,data" {
		t.Fatalf("records %s, want data,long,data,data", got)
	}
}

// A read error of the input is returned as it is, not as a RecordError:
// it ends the input.
func TestReaderReturnsInputError(t *testing.T) {
	boom := errors.New("disk gone")
	r := NewReader(io.MultiReader(strings.NewReader("{}\n"), iotest.ErrReader(boom)))
	if _, err := r.Next(); !errors.As(err, new(*RecordError)) {
		t.Fatalf("first line: %v, want a RecordError", err)
	}
	if _, err := r.Next(); !errors.Is(err, boom) || errors.As(err, new(*RecordError)) {
		t.Fatalf("second Next: %v, want the input's error", err)
	}
}

// echoChannel answers every Write at once, before Write returns, as a
// fast peer on another thread may: its answer goes to h.
type echoChannel struct {
	h    dvc.Handler
	fail error
}

func (c *echoChannel) Name() string { return "c" }
func (c *echoChannel) ID() uint32   { return 7 }
func (c *echoChannel) Close() error { return nil }
func (c *echoChannel) Write(_ context.Context, msg []byte) error {
	if c.fail != nil {
		return c.fail
	}
	c.h.Received(append([]byte("re:"), msg...))
	return nil
}

type oneRegistrar struct{ ch *echoChannel }

func (g oneRegistrar) Listen(_ string, l dvc.Listener) error {
	h, err := l.Accept(g.ch)
	g.ch.h = h
	return err
}

// A message is recorded before it goes to the backend, so an answer that
// arrives while Write is still running comes after it in the trace; a
// Write that fails is followed by a fail record.
func TestWriteRecordedBeforeTheAnswer(t *testing.T) {
	var buf bytes.Buffer
	rec := New(&buf, Client)
	ch := &echoChannel{}
	var own dvc.Channel
	err := rec.Registrar(oneRegistrar{ch}).Listen("c", dvc.ListenerFunc(func(c dvc.Channel) (dvc.Handler, error) {
		own = c
		return nopHandler{}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := own.Write(context.Background(), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	ch.fail = dvc.ErrClosed
	if err := own.Write(context.Background(), []byte("lost")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Write: %v", err)
	}
	var got []string
	for _, e := range readAll(t, &buf) {
		got = append(got, fmt.Sprintf("%s:%s:%s%s", e.From, e.Kind, e.Data, e.Err))
	}
	want := "server:open:,client:data:hi,server:data:re:hi,client:data:lost,client:fail:" + dvc.ErrClosed.Error()
	if s := strings.Join(got, ","); s != want {
		t.Fatalf("trace\n%s\nwant\n%s", s, want)
	}
}

type nopHandler struct{}

func (nopHandler) Received([]byte) {}
func (nopHandler) Closed(error)    {}

// readAll is every record of r; any error fails the test.
func readAll(t *testing.T, r io.Reader) []Event {
	t.Helper()
	var out []Event
	tr := NewReader(r)
	for {
		e, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
}
