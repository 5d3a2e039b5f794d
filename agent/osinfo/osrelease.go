package osinfo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// maxLine bounds one os-release line; longer lines are skipped.
const maxLine = 64 << 10

// Parse reads os-release(5) text: KEY=VALUE lines, VALUE unquoted, 'single quoted' or "double
// quoted" with \" \\ \$ \` escapes (backslash escapes also apply unquoted). Comments, blank lines
// and invalid lines are skipped; a later assignment wins. Keys are [A-Za-z_][A-Za-z0-9_]*.
func Parse(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !validKey(k) {
			continue
		}
		val, ok := unquote(v)
		if !ok {
			continue
		}
		out[k] = val
	}
	return out
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		switch {
		case r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// unquote interprets one shell-style value; ok is false for unterminated quotes.
func unquote(v string) (string, bool) {
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case '\'':
			end := strings.IndexByte(v[i+1:], '\'')
			if end < 0 {
				return "", false
			}
			sb.WriteString(v[i+1 : i+1+end])
			i += end + 1
		case '"':
			i++
			for ; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
					i++
				}
				sb.WriteByte(v[i])
			}
			if i >= len(v) {
				return "", false
			}
		case '\\':
			if i+1 < len(v) {
				i++
				sb.WriteByte(v[i])
			}
		case ' ', '\t':
			// Unquoted whitespace ends the value (anything after it would be a shell command).
			return sb.String(), true
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String(), true
}

// Reader reads OS identity under a root directory.
type Reader struct {
	root string
}

// New returns a Reader for root ("/" in production).
func New(root string) (*Reader, error) {
	if root == "" {
		return nil, errors.New("osinfo: root directory is required (\"/\" in production)")
	}
	return &Reader{root: root}, nil
}

// Info returns the OS from /etc/os-release (or /usr/lib/os-release) and the kernel release. A
// missing os-release is an error next to an OSInfo that still carries the kernel.
func (r *Reader) Info() (*kvmnetv1.OSInfo, error) {
	info := &kvmnetv1.OSInfo{}
	var errs []error
	if k, err := r.readTrim("proc/sys/kernel/osrelease"); err == nil {
		info.Kernel = k
	} else {
		errs = append(errs, fmt.Errorf("kernel release: %w", err))
	}
	var b []byte
	var err error
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err = os.ReadFile(filepath.Join(r.root, p))
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("os-release: %w", err))
		return info, errors.Join(errs...)
	}
	kv := Parse(b)
	info.Id, info.IdLike, info.VersionId, info.PrettyName = kv["ID"], kv["ID_LIKE"], kv["VERSION_ID"], kv["PRETTY_NAME"]
	if info.PrettyName == "" {
		info.PrettyName = kv["NAME"]
	}
	return info, errors.Join(errs...)
}

// Hostname returns the kernel host name (uname nodename) from /proc/sys/kernel/hostname.
func (r *Reader) Hostname() (string, error) {
	return r.readTrim("proc/sys/kernel/hostname")
}

func (r *Reader) readTrim(rel string) (string, error) {
	b, err := os.ReadFile(filepath.Join(r.root, rel))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
