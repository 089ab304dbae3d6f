// Package shaper puts a slow network between an HTTP client and a server on
// the loopback interface, in the same process: the kernel's netem is not
// available everywhere, and a cold-start figure measured on loopback says
// nothing about a real network.
//
// A [Proxy] forwards every request to one upstream server (a registry). It
// adds the round-trip time before it forwards each request, so every
// request costs one RTT as a request on a kept-alive connection does, and it
// paces the response bodies of all connections through one shared [Limiter],
// so that concurrent downloads share the bandwidth as they share a link.
// Request bodies (uploads) are forwarded unshaped. Connection set-up (TCP
// and TLS handshakes) is not modelled: clients keep their connections
// alive, and the proxy speaks plain HTTP.
//
// The [Limiter] is a link: it knows when it is next free, and every
// reservation of n bytes occupies it for n/rate from then, so concurrent
// bodies queue behind each other and share the rate, and an idle link gives
// no credit. Each body is a [Stream] whose bytes follow each other on the
// link: when the sender wakes up late from its wait (a busy machine does
// that), its next bytes are scheduled where its previous ones ended, so the
// lateness does not lower the rate. Writers take about a millisecond of the
// rate at a time (between [WriteChunk] and [MaxWriteChunk] bytes), so that
// concurrent bodies interleave finely without waking the sender too often.
package shaper
