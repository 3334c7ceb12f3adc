// Package roundtrip is the request/reply loop the Simple sample and
// MS-RDPEECO share, so that neither protocol package imports the other:
// RoundTrips (the server role's loop under simple.Pinger and
// echo.Prober), its Stats and Replies, and Replier (the client role's
// bounded answers, under simple.Echoer and echo.Responder). It knows no
// wire format.
package roundtrip
