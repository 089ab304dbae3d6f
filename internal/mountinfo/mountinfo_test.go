package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a\040b`:   "/tmp/a b",
		`/tmp/tab\011`:  "/tmp/tab\t",
		`/nl\012end`:    "/nl\nend",
		`/plain`:        "/plain",
		`/back\134x`:    `/back\x`,
		`/short\04`:     `/short\04`,
		`/notoctal\089`: `/notoctal\089`,
		`/big\777`:      `/big\777`, // more than a byte: not an escape
		`\040\040`:      "  ",
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
