package registrytest

import (
	"net/http"
	"testing"
)

func TestStartDistribution(t *testing.T) {
	d := StartDistribution(t)
	resp, err := http.Get("http://" + d.Host + "/v2/_catalog")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("catalog: %s", resp.Status)
	}
	d.Stop()
	d.Stop()
	if _, err := http.Get("http://" + d.Host + "/v2/"); err == nil {
		t.Fatal("registry still answers after Stop")
	}
}
