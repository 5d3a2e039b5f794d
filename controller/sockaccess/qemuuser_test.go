package sockaccess

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseQEMUConf(t *testing.T) {
	cases := []struct {
		name, text, user, group string
	}{
		{"debian stock: all commented", "#user = \"libvirt-qemu\"\n#group = \"libvirt-qemu\"\n", "", ""},
		{"explicit", "user = \"libvirt-qemu\"\ngroup = \"kvm\"\n", "libvirt-qemu", "kvm"},
		{"spaces and comments", "  user=\"qemu\"   # the fedora user\nsecurity_driver = \"none\"\n", "qemu", ""},
		{"numeric", "user = \"+0\"\ngroup = \"+107\"\n", "+0", "+107"},
		{"last wins", "user = \"a\"\nuser = \"b\"\n", "b", ""},
		{"other keys only", "dynamic_ownership = 1\nremember_owner = 0\n", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, g := ParseQEMUConf(tc.text)
			if u != tc.user || g != tc.group {
				t.Fatalf("got %q %q, want %q %q", u, g, tc.user, tc.group)
			}
		})
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestQEMUUser(t *testing.T) {
	acc := testAccounts(t)
	base := t.TempDir()
	stockConf := filepath.Join(base, "stock.conf")
	writeFile(t, stockConf, "#user = \"libvirt-qemu\"\n")
	explicit := filepath.Join(base, "explicit.conf")
	writeFile(t, explicit, "user = \"libvirt-qemu\"\ngroup = \"kvm\"\n")
	userOnly := filepath.Join(base, "useronly.conf")
	writeFile(t, userOnly, "user = \"libvirt-qemu\"\n")
	numeric := filepath.Join(base, "numeric.conf")
	writeFile(t, numeric, "user = \"+0\"\ngroup = \"+0\"\n")
	unknown := filepath.Join(base, "unknown.conf")
	writeFile(t, unknown, "user = \"nobody-here\"\n")

	procWithQEMU := filepath.Join(base, "proc1")
	writeFile(t, filepath.Join(procWithQEMU, "17", "comm"), "bash\n")
	writeFile(t, filepath.Join(procWithQEMU, "17", "status"), "Name:\tbash\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n")
	writeFile(t, filepath.Join(procWithQEMU, "4242", "comm"), "qemu-system-x86\n")
	writeFile(t, filepath.Join(procWithQEMU, "4242", "status"),
		"Name:\tqemu-system-x86\nUid:\t64055\t64055\t64055\t64055\nGid:\t107\t107\t107\t107\n")
	writeFile(t, filepath.Join(procWithQEMU, "self", "comm"), "x\n")
	emptyProc := filepath.Join(base, "proc0")
	if err := os.MkdirAll(emptyProc, 0o755); err != nil {
		t.Fatal(err)
	}
	libvirtDir := filepath.Join(base, "libvirt-qemu")
	if err := os.MkdirAll(libvirtDir, 0o751); err != nil {
		t.Fatal(err)
	}
	// Owned by the invoking user (root under `make test`): resolved through the accounts.
	myUID := uint32(os.Getuid())

	cases := []struct {
		name     string
		src      QEMUSources
		user     string
		group    string
		source   string
		errText  string
		evidence string
	}{
		{"qemu.conf explicit user and group", QEMUSources{QEMUConf: explicit, Proc: procWithQEMU}, "libvirt-qemu", "kvm",
			"qemu.conf", "", "source=qemu.conf"},
		{"qemu.conf user: primary group", QEMUSources{QEMUConf: userOnly, Proc: emptyProc}, "libvirt-qemu", "libvirt-qemu",
			"qemu.conf", "", "user=libvirt-qemu"},
		{"qemu.conf numeric ids", QEMUSources{QEMUConf: numeric, Proc: emptyProc}, "root", "root", "qemu.conf", "", ""},
		{"qemu.conf names an unknown user", QEMUSources{QEMUConf: unknown, Proc: emptyProc}, "", "", "",
			"not in the passwd file", ""},
		{"stock conf: running QEMU process", QEMUSources{QEMUConf: stockConf, Proc: procWithQEMU}, "libvirt-qemu", "kvm",
			"process", "", "pid=4242"},
		{"no conf, no process: libvirt dir owner", QEMUSources{QEMUConf: filepath.Join(base, "absent"), Proc: emptyProc,
			LibvirtDir: libvirtDir}, "", "", "libvirt-dir", "", "qemu.conf=" + filepath.Join(base, "absent") + "(unreadable)"},
		{"nothing to go by", QEMUSources{QEMUConf: stockConf, Proc: emptyProc, LibvirtDir: filepath.Join(base, "nope")},
			"", "", "", "cannot tell which user QEMU runs as", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.src.Accounts = acc
			id, err := QEMUUser(tc.src)
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("error = %v, want %q", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.source == "libvirt-dir" {
				tc.user = acc.UserName(myUID)
				tc.group = id.Group
			}
			if id.User != tc.user || id.Group != tc.group || id.Source != tc.source {
				t.Fatalf("got %+v, want user=%s group=%s source=%s", id, tc.user, tc.group, tc.source)
			}
			if tc.evidence != "" && !strings.Contains(id.Evidence, tc.evidence) {
				t.Fatalf("evidence %q lacks %q", id.Evidence, tc.evidence)
			}
		})
	}
}
