package sockaccess

import (
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

const testPasswd = `root:x:0:0:root:/root:/bin/bash
# a comment
alice:x:1000:1000::/home/alice:/bin/bash
bob:x:1001:1001::/home/bob:/bin/bash
carol:x:1002:1002::/home/carol:/bin/bash
dave:x:1003:107::/home/dave:/bin/bash
libvirt-qemu:x:64055:108:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin
broken line
`

const testGroup = `root:x:0:
kvm:x:107:alice,bob,libvirt-qemu,eve
libvirt-qemu:x:108:
alice:x:1000:
bob:x:1001:
carol:x:1002:
libvirt:x:109:carol
empty:x:200:
`

func testAccounts(t testing.TB) Accounts {
	t.Helper()
	users, err := ParsePasswd(strings.NewReader(testPasswd))
	if err != nil {
		t.Fatal(err)
	}
	groups, err := ParseGroup(strings.NewReader(testGroup))
	if err != nil {
		t.Fatal(err)
	}
	return Accounts{Users: users, Groups: groups}
}

const (
	uRoot, uAlice, uCarol, uQEMU = 0, 1000, 1002, 64055
	gRoot, gKVM, gQEMU, gLibvirt = 0, 107, 108, 109
	gEmpty                       = 200
)

func dir(path string, uid, gid uint32, perm fs.FileMode) Node {
	return Node{Path: path, UID: uid, GID: gid, Mode: fs.ModeDir | perm}
}

func sock(path string, uid, gid uint32, perm fs.FileMode) Node {
	return Node{Path: path, UID: uid, GID: gid, Mode: fs.ModeSocket | perm}
}

// stdDirs is / /var /var/lib, root-owned 0755.
func stdDirs(extra ...Node) []Node {
	return append([]Node{dir("/", uRoot, gRoot, 0o755), dir("/var", uRoot, gRoot, 0o755),
		dir("/var/lib", uRoot, gRoot, 0o755)}, extra...)
}

func TestEvaluate(t *testing.T) {
	acc := testAccounts(t)
	trustQEMU := Options{Trusted: []string{"libvirt-qemu"}}
	cases := []struct {
		name      string
		chain     []Node
		opts      Options
		everyone  bool
		groups    map[string][]string
		users     []string
		who       string
		evidence  []string
		exposed   bool
		mode      string
		ownerName string
	}{
		{
			name: "debian stock automatic path: group kvm gets in",
			chain: stdDirs(
				dir("/var/lib/libvirt", uRoot, gRoot, 0o755),
				dir("/var/lib/libvirt/qemu", uQEMU, gKVM, 0o751),
				dir("/var/lib/libvirt/qemu/channel", uQEMU, gKVM, 0o755),
				dir("/var/lib/libvirt/qemu/channel/target", uQEMU, gKVM, 0o755),
				dir("/var/lib/libvirt/qemu/channel/target/domain-1-vm", uQEMU, gKVM, 0o750),
				sock("/var/lib/libvirt/qemu/channel/target/domain-1-vm/org.kvmnet.agent.0", uQEMU, gKVM, 0o775)),
			opts:   trustQEMU,
			groups: map[string][]string{"kvm": {"alice", "bob", "dave", "eve"}},
			who:    "group kvm: alice, bob, dave, eve",
			evidence: []string{"everyone=no", "groups=kvm", "trusted=libvirt-qemu",
				"gates=/var/lib/libvirt/qemu/channel/target/domain-1-vm:drwxr-x---:libvirt-qemu:kvm," +
					"/var/lib/libvirt/qemu/channel/target/domain-1-vm/org.kvmnet.agent.0:srwxrwxr-x:libvirt-qemu:kvm",
				"socket=/var/lib/libvirt/qemu/channel/target/domain-1-vm/org.kvmnet.agent.0:srwxrwxr-x:libvirt-qemu:kvm"},
			exposed: true, mode: "srwxrwxr-x", ownerName: "libvirt-qemu",
		},
		{
			name: "kvmnet channel dir 0700 owned by QEMU's user: root only",
			chain: stdDirs(dir("/var/lib/kvmnet", uRoot, gRoot, 0o755),
				dir("/var/lib/kvmnet/channels", uQEMU, gQEMU, 0o700),
				sock("/var/lib/kvmnet/channels/vm.agent.0", uQEMU, gKVM, 0o775)),
			opts: trustQEMU, who: "root only",
			evidence: []string{"everyone=no", "groups=none", "users=none", "can_connect=none", "trusted=libvirt-qemu"},
		},
		{
			name: "same dir without trusting QEMU's user names it",
			chain: stdDirs(dir("/var/lib/kvmnet", uRoot, gRoot, 0o755),
				dir("/var/lib/kvmnet/channels", uQEMU, gQEMU, 0o700),
				sock("/var/lib/kvmnet/channels/vm.agent.0", uQEMU, gKVM, 0o775)),
			users: []string{"libvirt-qemu"}, who: "user libvirt-qemu", exposed: true,
			evidence: []string{"trusted=none", "can_connect=libvirt-qemu"},
		},
		{
			name:     "world-writable socket in open dirs: everyone",
			chain:    stdDirs(dir("/var/lib/x", uRoot, gRoot, 0o755), sock("/var/lib/x/s", uRoot, gRoot, 0o777)),
			everyone: true, who: "everyone", exposed: true,
			evidence: []string{"everyone=yes", "gates=none"},
		},
		{
			name:  "socket without write for others: root only when owned by root",
			chain: stdDirs(dir("/var/lib/x", uRoot, gRoot, 0o755), sock("/var/lib/x/s", uRoot, gRoot, 0o755)),
			who:   "root only",
		},
		{
			name:  "root-only directory",
			chain: stdDirs(dir("/var/lib/x", uRoot, gRoot, 0o700), sock("/var/lib/x/s", uRoot, gRoot, 0o777)),
			who:   "root only", evidence: []string{"gates=/var/lib/x:drwx------:root:root"},
		},
		{
			name:  "read without search on a directory blocks",
			chain: stdDirs(dir("/var/lib/x", uRoot, gRoot, 0o744), sock("/var/lib/x/s", uRoot, gRoot, 0o777)),
			who:   "root only",
		},
		{
			name: "parent directory gated by group libvirt",
			chain: stdDirs(dir("/var/lib/x", uRoot, gLibvirt, 0o750),
				sock("/var/lib/x/s", uRoot, gRoot, 0o777)),
			groups: map[string][]string{"libvirt": {"carol"}}, who: "group libvirt: carol", exposed: true,
		},
		{
			name: "group with no members is still a door",
			chain: stdDirs(dir("/var/lib/x", uRoot, gRoot, 0o755),
				sock("/var/lib/x/s", uRoot, gEmpty, 0o770)),
			groups: map[string][]string{"empty": {}}, who: "group empty (no members)", exposed: true,
		},
		{
			name:  "owner only",
			chain: stdDirs(dir("/var/lib/x", uRoot, gRoot, 0o755), sock("/var/lib/x/s", uCarol, 1002, 0o700)),
			users: []string{"carol"}, who: "user carol", exposed: true,
		},
		{
			name: "owner class decides: owner without w is denied although in the group",
			chain: stdDirs(dir("/var/lib/x", uRoot, gRoot, 0o755),
				sock("/var/lib/x/s", uAlice, gKVM, 0o070)),
			groups: map[string][]string{"kvm": {"bob", "dave", "eve", "libvirt-qemu"}},
			who:    "group kvm: bob, dave, eve, libvirt-qemu", exposed: true,
			evidence: []string{"can_connect=bob,dave,eve,libvirt-qemu"},
		},
		{
			name: "owner of a private dir plus group on the socket: a user, not a group door",
			chain: stdDirs(dir("/var/lib/x", uAlice, 1000, 0o700),
				sock("/var/lib/x/s", uRoot, gKVM, 0o770)),
			users: []string{"alice"}, who: "user alice", exposed: true, evidence: []string{"groups=none"},
		},
		{
			name:  "unknown ids are named by number",
			chain: stdDirs(dir("/var/lib/x", uRoot, gRoot, 0o755), sock("/var/lib/x/s", 4242, 4343, 0o700)),
			who:   "root only", ownerName: "uid:4242", mode: "srwx------",
			evidence: []string{"socket=/var/lib/x/s:srwx------:uid:4242:gid:4343"},
		},
		{
			name: "acl is reported, not a socket is reported",
			chain: stdDirs(Node{Path: "/var/lib/x", Mode: fs.ModeDir | 0o700, HasACL: true},
				Node{Path: "/var/lib/x/f", Mode: 0o666}),
			who: "root only", evidence: []string{"acl=/var/lib/x", "type=not-a-socket"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Evaluate(tc.chain, acc, tc.opts)
			if got.Everyone != tc.everyone {
				t.Errorf("Everyone = %v, want %v", got.Everyone, tc.everyone)
			}
			if !reflect.DeepEqual(got.Groups, tc.groups) && !(len(got.Groups) == 0 && len(tc.groups) == 0) {
				t.Errorf("Groups = %#v, want %#v", got.Groups, tc.groups)
			}
			if !reflect.DeepEqual(got.Users, tc.users) {
				t.Errorf("Users = %#v, want %#v", got.Users, tc.users)
			}
			if w := Who(got); w != tc.who {
				t.Errorf("Who = %q, want %q", w, tc.who)
			}
			if got.Exposed() != tc.exposed {
				t.Errorf("Exposed = %v, want %v", got.Exposed(), tc.exposed)
			}
			words := strings.Fields(got.Evidence)
			for _, e := range tc.evidence {
				found := false
				for _, w := range words {
					found = found || w == e
				}
				if !found {
					t.Errorf("evidence lacks %q: %s", e, got.Evidence)
				}
			}
			if tc.mode != "" && got.Mode != tc.mode {
				t.Errorf("Mode = %q, want %q", got.Mode, tc.mode)
			}
			if tc.ownerName != "" && got.Owner != tc.ownerName {
				t.Errorf("Owner = %q, want %q", got.Owner, tc.ownerName)
			}
			if got.Path != tc.chain[len(tc.chain)-1].Path {
				t.Errorf("Path = %q", got.Path)
			}
		})
	}
}

func TestEvaluateEmptyChain(t *testing.T) {
	if got := Evaluate(nil, Accounts{}, Options{}); got.Evidence != "error=empty-path" || got.Exposed() {
		t.Fatalf("got %+v", got)
	}
}

func TestFormatMode(t *testing.T) {
	cases := []struct {
		name string
		mode fs.FileMode
		want string
	}{
		{"socket", fs.ModeSocket | 0o775, "srwxrwxr-x"},
		{"dir", fs.ModeDir | 0o750, "drwxr-x---"},
		{"file", 0o644, "-rw-r--r--"},
		{"setgid dir", fs.ModeDir | fs.ModeSetgid | 0o2770&0o777, "drwxrws---"},
		{"sticky tmp", fs.ModeDir | fs.ModeSticky | 0o777, "drwxrwxrwt"},
		{"setuid without x", fs.ModeSetuid | 0o644, "-rwSr--r--"},
		{"symlink", fs.ModeSymlink | 0o777, "lrwxrwxrwx"},
		{"char device", fs.ModeDevice | fs.ModeCharDevice | 0o600, "crw-------"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatMode(tc.mode); got != tc.want {
				t.Fatalf("FormatMode = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCanSearch(t *testing.T) {
	acc := testAccounts(t)
	cases := []struct {
		name, user string
		chain      []Node
		ok         bool
		blocker    string
	}{
		{"qemu user through its own 0700 dir", "libvirt-qemu",
			stdDirs(dir("/var/lib/kvmnet", uRoot, gRoot, 0o755), dir("/var/lib/kvmnet/channels", uQEMU, gQEMU, 0o700)), true, ""},
		{"blocked by a root-only parent", "libvirt-qemu",
			stdDirs(dir("/var/lib/kvmnet", uRoot, gRoot, 0o700), dir("/var/lib/kvmnet/channels", uQEMU, gQEMU, 0o700)),
			false, "/var/lib/kvmnet:drwx------:root:root"},
		{"group search suffices", "alice", stdDirs(dir("/srv", uRoot, gKVM, 0o710)), true, ""},
		{"root always", "root", stdDirs(dir("/srv", 5, 5, 0o000)), true, ""},
		{"unknown user", "zed", stdDirs(), false, "user zed unknown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, blocker := CanSearch(tc.chain, acc, tc.user)
			if ok != tc.ok || blocker != tc.blocker {
				t.Fatalf("got %v %q, want %v %q", ok, blocker, tc.ok, tc.blocker)
			}
		})
	}
}
