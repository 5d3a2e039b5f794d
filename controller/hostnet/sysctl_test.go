package hostnet

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kvmnet/kvmnet/scripts/lab/testenv/goldenfile"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProcSysctl(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"net/ipv4/ip_forward": "0\n"})
	s := ProcSysctl{Root: root}
	if v, err := s.Read(IPForwardKey); err != nil || v != "0" {
		t.Fatalf("Read = %q, %v", v, err)
	}
	if err := s.Write(IPForwardKey, "1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Read(IPForwardKey); v != "1" {
		t.Fatalf("after Write: %q", v)
	}
	if _, err := s.Read("net.ipv4.nope"); err == nil {
		t.Fatal("missing key read without error")
	}
}

func TestFindOverrides(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"none", nil, nil},
		{"sysctl.conf sets 0", map[string]string{"etc/sysctl.conf": "vm.swappiness=10\nnet.ipv4.ip_forward=0\n"}, []string{"/etc/sysctl.conf"}},
		{"sysctl.conf sets 1", map[string]string{"etc/sysctl.conf": "net.ipv4.ip_forward = 1\n"}, nil},
		{"commented out", map[string]string{"etc/sysctl.conf": "#net.ipv4.ip_forward=0\n; net.ipv4.ip_forward=0\n"}, nil},
		{"later file with slash key and dash", map[string]string{"etc/sysctl.d/99-zz.conf": "-net/ipv4/ip_forward = 0\n"}, []string{"/etc/sysctl.d/99-zz.conf"}},
		{"earlier file does not override", map[string]string{"etc/sysctl.d/10-off.conf": "net.ipv4.ip_forward=0\n"}, nil},
		{"usr/lib later name", map[string]string{"usr/lib/sysctl.d/99-zzz.conf": "net.ipv4.ip_forward=0"}, []string{"/usr/lib/sysctl.d/99-zzz.conf"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			if got := findOverrides(root); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("findOverrides = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestIPForwardFix applies the fix to a fixture /proc/sys and etc root and compares what is printed
// and written with golden files.
func TestIPForwardFix(t *testing.T) {
	proc, etc := t.TempDir(), t.TempDir()
	writeFiles(t, proc, map[string]string{"net/ipv4/ip_forward": "0\n"})
	writeFiles(t, etc, map[string]string{"etc/sysctl.conf": "net.ipv4.ip_forward=0\n"})
	r, err := New(Config{Handle: nilHandle(), Sysctl: ProcSysctl{Root: proc}, EtcRoot: etc})
	if err != nil {
		t.Fatal(err)
	}
	if on, err := r.IPForward(); err != nil || on {
		t.Fatalf("IPForward = %v, %v", on, err)
	}
	fix := r.IPForwardFix()
	golden(t, "ipforward-fix.txt", fix.String())
	if err := r.ApplyIPForwardFix(fix); err != nil {
		t.Fatal(err)
	}
	if on, _ := r.IPForward(); !on {
		t.Fatal("ip_forward still off")
	}
	b, err := os.ReadFile(filepath.Join(etc, IPForwardFile))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "99-kvmnet-ip-forward.conf", string(b))
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), []byte(got))
}
