package faultproxy

import (
	"net/http"
	"regexp"
	"strings"
)

// Kind classifies a registry request by what it does.
type Kind string

// The kinds of requests a registry client sends.
const (
	// KindPing is GET /v2/, the API version check.
	KindPing Kind = "ping"
	// KindToken is a request to the proxy's own token server (WithTokenAuth).
	KindToken Kind = "token"
	// KindBlobHead is HEAD /v2/NAME/blobs/DIGEST: does the blob exist?
	KindBlobHead Kind = "blob HEAD"
	// KindBlobGet is GET /v2/NAME/blobs/DIGEST: a download.
	KindBlobGet Kind = "blob GET"
	// KindBlobPost is POST /v2/NAME/blobs/uploads/: an upload starts (or a
	// cross-repository mount).
	KindBlobPost Kind = "blob POST"
	// KindBlobPatch is PATCH /v2/NAME/blobs/uploads/ID: upload data.
	KindBlobPatch Kind = "blob PATCH"
	// KindBlobPut is PUT /v2/NAME/blobs/uploads/ID?digest=DIGEST: an upload
	// is committed (the blob exists from now on).
	KindBlobPut Kind = "blob PUT"
	// KindManifestHead is HEAD /v2/NAME/manifests/REF.
	KindManifestHead Kind = "manifest HEAD"
	// KindManifestGet is GET /v2/NAME/manifests/REF.
	KindManifestGet Kind = "manifest GET"
	// KindManifestPut is PUT /v2/NAME/manifests/REF: a manifest is stored
	// (and REF, when it is a tag, moves).
	KindManifestPut Kind = "manifest PUT"
	// KindOther is anything else (deletes, tag lists, upload status, ...).
	KindOther Kind = "other"
)

var (
	uploadPath   = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/[^/]*$`)
	blobPath     = regexp.MustCompile(`^/v2/(.+)/blobs/([a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$`)
	manifestPath = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
)

// Classify returns the kind of a registry request. Requests to "/token" are
// KindToken whatever their method.
func Classify(r *http.Request) Kind {
	return classify(r.Method, r.URL.Path)
}

func classify(method, path string) Kind {
	switch {
	case path == "/token":
		return KindToken
	case path == "/v2/" || path == "/v2":
		if method == http.MethodGet || method == http.MethodHead {
			return KindPing
		}
	case uploadPath.MatchString(path):
		switch method {
		case http.MethodPost:
			return KindBlobPost
		case http.MethodPatch:
			return KindBlobPatch
		case http.MethodPut:
			return KindBlobPut
		}
	case blobPath.MatchString(path):
		switch method {
		case http.MethodHead:
			return KindBlobHead
		case http.MethodGet:
			return KindBlobGet
		}
	case manifestPath.MatchString(path):
		switch method {
		case http.MethodHead:
			return KindManifestHead
		case http.MethodGet:
			return KindManifestGet
		case http.MethodPut:
			return KindManifestPut
		}
	}
	return KindOther
}

// repository returns the repository a registry path is about, or "".
func repository(path string) string {
	for _, re := range []*regexp.Regexp{uploadPath, blobPath, manifestPath} {
		if m := re.FindStringSubmatch(path); m != nil {
			return m[1]
		}
	}
	if rest, ok := strings.CutPrefix(path, "/v2/"); ok {
		if i := strings.Index(rest, "/tags/"); i > 0 {
			return rest[:i]
		}
	}
	return ""
}

// target returns the digest or tag a request is about: the blob digest of
// a blob request or an upload commit, the reference of a manifest request.
func target(path, query string) string {
	if m := blobPath.FindStringSubmatch(path); m != nil {
		return m[2]
	}
	if m := manifestPath.FindStringSubmatch(path); m != nil {
		return m[2]
	}
	if uploadPath.MatchString(path) {
		for kv := range strings.SplitSeq(query, "&") {
			if d, ok := strings.CutPrefix(kv, "digest="); ok {
				return strings.ReplaceAll(strings.ReplaceAll(d, "%3A", ":"), "%3a", ":")
			}
		}
	}
	return ""
}
