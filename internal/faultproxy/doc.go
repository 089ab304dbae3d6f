// Package faultproxy is a fault-injecting HTTP reverse proxy for tests that
// talk to a container registry.
//
// New starts a proxy on the loopback interface in front of a registry (the
// in-process one of internal/registrytest, or Debian's docker-registry
// started by registrytest.StartDistribution). Clients use the proxy's Host
// in image references; the proxy forwards every request with the Host header
// unchanged, so the registry's absolute upload locations point back at the
// proxy.
//
// Rules (Inject) match requests by Kind, method, path regular expression and
// occurrence (the Nth matching request, for Times requests) and apply a
// Fault instead of, or while, forwarding:
//
//	Status(code)               answer with an error status (500, 502, 503, 404, ...)
//	RetryAfter(code, d)        answer 429 or 503 with a Retry-After header
//	ResetAfter(n)              reset the TCP connection after n bytes of the request
//	                           body (uploads) or of the response body (downloads)
//	Stall(d), StallAfter(n, d) hold the request, or the response after n bytes,
//	                           until the client gives up or d passes
//	Expire()                   answer 401 with a challenge, as for an expired token
//	Hold(gate)                 hold the request until the test releases the gate
//
// The proxy can also play the registry's authentication: WithBasicAuth
// requires Basic credentials on every request, WithTokenAuth runs a token
// server at /token on the proxy itself (the Bearer realm names the proxy) and
// accepts only tokens it issued. Tokens lists every token handed out, so a
// test can check that none of them shows up in a program's output.
//
// Every request is counted by Kind (blob HEAD, blob GET, upload POST, PATCH
// and PUT, manifest HEAD, GET and PUT, ...) and recorded, when it is
// answered, with its arrival time, the status the client saw and the fault
// applied.
//
// A request that reached the registry is finished there even when its
// client goes away (a test killed the process): WaitIdle waits for the proxy
// to be done, after which the registry's state is final and can be checked.
package faultproxy
