package report

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/lazypull"
	"github.com/coldstart-dev/coldstart/internal/shaper"
)

type logRT struct {
	rt  http.RoundTripper
	mu  sync.Mutex
	t0  time.Time
	log []string
}

func (l *logRT) RoundTrip(r *http.Request) (*http.Response, error) {
	s := time.Now()
	resp, err := l.rt.RoundTrip(r)
	l.mu.Lock()
	l.log = append(l.log, r.Header.Get("Range")+" start "+s.Sub(l.t0).Round(100*time.Microsecond).String()+" headers after "+time.Since(s).Round(100*time.Microsecond).String())
	l.mu.Unlock()
	return resp, err
}

func TestZZReqExp(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	b, _ := os.ReadFile("/tmp/coldstart-accuracy-profile.txt")
	files := strings.Fields(string(b))
	ctx := context.Background()
	p, err := shaper.Start("127.0.0.1:5077", shaper.WithRate(125e6), shaper.WithRTT(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for k := 0; k < 3; k++ {
		lr := &logRT{rt: http.DefaultTransport.(*http.Transport).Clone(), t0: time.Now()}
		res, err := lazypull.Start(ctx, p.Host+"/accuracy/estargz-optimized:1", files, lazypull.WithTransport(lr))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("duration %s mounted %s, %d requests", res.Duration, res.Mounted, res.Requests)
		if k == 2 {
			for _, l := range lr.log {
				t.Log(l)
			}
		}
	}
}
