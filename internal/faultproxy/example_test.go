package faultproxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/coldstart-dev/coldstart/internal/faultproxy"
)

// Classify tells the requests of a push apart; rules and counts use it.
func ExampleClassify() {
	const digest = "sha256:4bae4b680e63e2af51a0c2824256cd307c60e4b6b03f0d7cd0b329feaebebe35"
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodHead, "/v2/app/blobs/"+digest, nil),
		httptest.NewRequest(http.MethodPost, "/v2/app/blobs/uploads/", nil),
		httptest.NewRequest(http.MethodPatch, "/v2/app/blobs/uploads/8d1f", nil),
		httptest.NewRequest(http.MethodPut, "/v2/app/blobs/uploads/8d1f?digest="+digest, nil),
		httptest.NewRequest(http.MethodPut, "/v2/app/manifests/v1", nil),
	} {
		fmt.Println(faultproxy.Classify(r))
	}
	// Output:
	// blob HEAD
	// blob POST
	// blob PATCH
	// blob PUT
	// manifest PUT
}
