package faultproxy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

type authMode int

const (
	authNone authMode = iota
	authBasic
	authToken
)

type authConfig struct {
	mode           authMode
	user, password string
}

// service is the "service" of the Bearer challenge.
const service = "faultproxy"

// authorized checks a registry request's credentials and answers 401 when
// they are missing or wrong.
func (p *Proxy) authorized(ex *exchange) bool {
	switch p.auth.mode {
	case authBasic:
		if u, pw, ok := ex.r.BasicAuth(); ok && u == p.auth.user && pw == p.auth.password {
			return true
		}
	case authToken:
		if tok, ok := strings.CutPrefix(ex.r.Header.Get("Authorization"), "Bearer "); ok {
			p.mu.Lock()
			valid := p.valid[tok]
			p.mu.Unlock()
			if valid {
				return true
			}
		}
	default:
		return true
	}
	p.challenge(ex)
	p.writeError(ex, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
	return false
}

// challenge sets the WWW-Authenticate header of a 401.
func (p *Proxy) challenge(ex *exchange) {
	h := ex.w.Header()
	if p.auth.mode != authToken {
		h.Set("WWW-Authenticate", `Basic realm="faultproxy"`)
		return
	}
	c := fmt.Sprintf(`Bearer realm="http://%s/token",service="%s"`, ex.r.Host, service)
	if repo := repository(ex.r.URL.Path); repo != "" {
		actions := "pull"
		if ex.r.Method != http.MethodGet && ex.r.Method != http.MethodHead {
			actions = "pull,push"
		}
		c += fmt.Sprintf(`,scope="repository:%s:%s"`, repo, actions)
	}
	h.Set("WWW-Authenticate", c)
}

// revoke invalidates the token a request carries.
func (p *Proxy) revoke(r *http.Request) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		p.mu.Lock()
		delete(p.valid, tok)
		p.mu.Unlock()
	}
}

// serveToken is the token server: GET with Basic credentials, or POST with
// form credentials, returns a new token.
func (p *Proxy) serveToken(ex *exchange) {
	r := ex.r
	var user, password string
	var ok bool
	switch r.Method {
	case http.MethodGet:
		user, password, ok = r.BasicAuth()
	case http.MethodPost:
		if err := r.ParseForm(); err == nil {
			user, password = r.PostForm.Get("username"), r.PostForm.Get("password")
			ok = user != ""
		}
	default:
		p.writeError(ex, http.StatusMethodNotAllowed, "UNSUPPORTED", "token server: GET or POST")
		return
	}
	if p.auth.user != "" && (!ok || user != p.auth.user || password != p.auth.password) {
		ex.w.Header().Set("WWW-Authenticate", `Basic realm="faultproxy token server"`)
		p.writeError(ex, http.StatusUnauthorized, "UNAUTHORIZED", "token server: bad credentials")
		return
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := "fpt_" + hex.EncodeToString(b[:])
	p.mu.Lock()
	p.tokens = append(p.tokens, tok)
	p.valid[tok] = true
	p.mu.Unlock()
	body, _ := json.Marshal(map[string]any{
		"token": tok, "access_token": tok, "expires_in": 300,
		"issued_at": time.Now().UTC().Format(time.RFC3339),
	})
	ex.w.Header().Set("Content-Type", "application/json")
	ex.w.WriteHeader(http.StatusOK)
	_, _ = ex.w.Write(body)
}
