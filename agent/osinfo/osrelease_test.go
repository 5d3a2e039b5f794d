package osinfo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "os-release", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseDistributions(t *testing.T) {
	tests := []struct {
		file                          string
		id, idLike, versionID, pretty string
	}{
		{"debian12", "debian", "", "12", "Debian GNU/Linux 12 (bookworm)"},
		{"ubuntu2404", "ubuntu", "debian", "24.04", "Ubuntu 24.04.1 LTS"},
		{"fedora40", "fedora", "", "40", "Fedora Linux 40 (Server Edition)"},
		{"kali", "kali", "debian", "2024.3", "Kali GNU/Linux Rolling"},
		{"arch", "arch", "", "", "Arch Linux"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			kv := Parse(fixture(t, tc.file))
			if kv["ID"] != tc.id || kv["ID_LIKE"] != tc.idLike || kv["VERSION_ID"] != tc.versionID || kv["PRETTY_NAME"] != tc.pretty {
				t.Fatalf("got %q %q %q %q", kv["ID"], kv["ID_LIKE"], kv["VERSION_ID"], kv["PRETTY_NAME"])
			}
		})
	}
}

func TestParseQuoting(t *testing.T) {
	kv := Parse(fixture(t, "tricky"))
	want := map[string]string{
		"ID":          "single quoted",
		"ID_LIKE":     "rhel centos fedora",
		"PRETTY_NAME": "Say \"hi\" $HOME `x` \\ done",
		"VERSION_ID":  "unquoted with escapes",
		"EMPTY":       "",
		"TRAILING":    "value",
	}
	if len(kv) != len(want) {
		t.Fatalf("got %d keys %v, want %d", len(kv), kv, len(want))
	}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}
	for _, bad := range []string{`ID="unterminated`, `ID='unterminated`} {
		if _, ok := Parse([]byte(bad))["ID"]; ok {
			t.Errorf("%s accepted", bad)
		}
	}
	if got := Parse([]byte("ID=a\nID=b\n"))["ID"]; got != "b" {
		t.Errorf("later assignment should win: %q", got)
	}
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		abs := filepath.Join(root, p)
		_ = os.MkdirAll(filepath.Dir(abs), 0o755)
		if err := os.WriteFile(abs, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestReaderInfo(t *testing.T) {
	ubuntu := string(fixture(t, "ubuntu2404"))
	tests := []struct {
		name    string
		files   map[string]string
		want    *kvmnetv1.OSInfo
		wantErr string
	}{
		{
			name:  "etc/os-release",
			files: map[string]string{"etc/os-release": ubuntu, "proc/sys/kernel/osrelease": "6.8.0-45-generic\n"},
			want:  &kvmnetv1.OSInfo{Id: "ubuntu", IdLike: "debian", VersionId: "24.04", PrettyName: "Ubuntu 24.04.1 LTS", Kernel: "6.8.0-45-generic"},
		},
		{
			name:  "fallback to usr/lib",
			files: map[string]string{"usr/lib/os-release": "ID=arch\nNAME=\"Arch Linux\"\n", "proc/sys/kernel/osrelease": "6.10.1-arch1-1\n"},
			want:  &kvmnetv1.OSInfo{Id: "arch", PrettyName: "Arch Linux", Kernel: "6.10.1-arch1-1"},
		},
		{
			name:    "no os-release",
			files:   map[string]string{"proc/sys/kernel/osrelease": "6.1.0-25-amd64\n"},
			want:    &kvmnetv1.OSInfo{Kernel: "6.1.0-25-amd64"},
			wantErr: "os-release",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(writeTree(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Info()
			if (err != nil) != (tc.wantErr != "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if got.String() != tc.want.String() {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRealMachine(t *testing.T) {
	r, _ := New("/")
	info, err := r.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Id == "" || info.Kernel == "" {
		t.Fatalf("real /etc/os-release and /proc gave %v", info)
	}
	if h, err := r.Hostname(); err != nil || h == "" {
		t.Fatalf("hostname %q %v", h, err)
	}
}

func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "os-release"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		f.Add(fixture(f, e.Name()))
	}
	f.Add([]byte("ID=\"a\\\nID='\n=\n\"\"=x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		kv := Parse(b)
		for k, v := range kv {
			if !validKey(k) {
				t.Fatalf("invalid key %q returned", k)
			}
			if strings.ContainsAny(v, "\n") {
				t.Fatalf("value of %s spans lines: %q", k, v)
			}
		}
	})
}
