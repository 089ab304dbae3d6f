package mountinfo

import (
	"strconv"
	"strings"
)

// Unescape decodes the octal escapes of a mountinfo path field: the kernel
// writes a space as \040, a tab as \011, a newline as \012 and a backslash
// as \134. An escape that is not three octal digits is kept as written.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
