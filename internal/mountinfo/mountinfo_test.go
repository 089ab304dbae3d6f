package mountinfo

import (
	"strings"
	"testing"
)

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

func TestUnder(t *testing.T) {
	info := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 22 0:31 / /work/tmp/x\040y/merged rw - overlay overlay rw
36 22 0:32 / /work/tmpfoo rw - tmpfs tmpfs rw
37 22 0:33 / /work/tmp rw - tmpfs tmpfs rw
38 22 0:34 / /work/tmp/a rw - tmpfs tmpfs rw
short line
`
	got, err := Under(strings.NewReader(info), "/work/tmp/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/work/tmp/x y/merged", "/work/tmp/a", "/work/tmp"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Under = %q, want %q", got, want)
	}
}
