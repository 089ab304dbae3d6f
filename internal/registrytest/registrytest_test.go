package registrytest_test

import (
	"net/http"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
)

func TestServerRecordsAndWraps(t *testing.T) {
	var order []string
	s := registrytest.New(t,
		registrytest.WithMiddleware(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				order = append(order, "outer")
				next.ServeHTTP(w, r)
			})
		}),
		registrytest.WithMiddleware(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				order = append(order, "inner")
				if r.URL.Query().Get("teapot") != "" {
					w.WriteHeader(http.StatusTeapot)
					return
				}
				next.ServeHTTP(w, r)
			})
		}),
	)
	resp, err := http.Get(s.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/ = %d, want 200 from the registry", resp.StatusCode)
	}
	resp, err = http.Get(s.URL + "/v2/?teapot=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Errorf("middleware not applied: %d", resp.StatusCode)
	}
	got := s.Requests()
	if len(got) != 2 || got[0].String() != "GET /v2/" || got[1].String() != "GET /v2/?teapot=1" {
		t.Errorf("recorded %v", got)
	}
	if len(order) != 4 || order[0] != "outer" || order[1] != "inner" {
		t.Errorf("middleware order %v, want outer then inner", order)
	}
	if s.Ref("a:b") != s.Host+"/a:b" {
		t.Errorf("Ref = %q", s.Ref("a:b"))
	}
	s.ResetRequests()
	if n := len(s.Requests()); n != 0 {
		t.Errorf("%d requests after reset", n)
	}
}
