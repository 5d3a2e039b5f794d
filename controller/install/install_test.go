package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/qga"
)

// fakeGuest is an in-memory guest behind qemu-guest-agent: files written through guest-file-*,
// commands answered by name.
type fakeGuest struct {
	mu       sync.Mutex
	pingErr  error
	enabled  map[string]bool
	os       qga.OSInfo
	files    map[string][]byte
	open     map[int64]string
	next     int64
	ran      []string
	pkgArch  string // what dpkg-deb/rpm -qp report
	pkgName  string
	dpkgFail bool
	chunks   int
}

func newFakeGuest() *fakeGuest {
	en := map[string]bool{}
	for _, c := range append([]string{"guest-ping", "guest-info"}, Needed...) {
		en[c] = true
	}
	return &fakeGuest{enabled: en, os: qga.OSInfo{ID: "debian", PrettyName: "Debian GNU/Linux 12 (bookworm)", Machine: "x86_64"},
		files: map[string][]byte{}, open: map[int64]string{}, pkgArch: "amd64", pkgName: "kvmnet-agent"}
}

func (g *fakeGuest) Ping(context.Context) error { return g.pingErr }
func (g *fakeGuest) Info(context.Context) (qga.Info, error) {
	return qga.Info{Version: "7.2.0", Enabled: g.enabled}, nil
}
func (g *fakeGuest) OSInfo(context.Context) (qga.OSInfo, error) { return g.os, nil }
func (g *fakeGuest) FileOpen(_ context.Context, path, mode string) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.next++
	g.open[g.next] = path
	g.files[path] = nil
	return g.next, nil
}
func (g *fakeGuest) FileWrite(_ context.Context, h int64, data []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.open[h]
	if !ok {
		return errors.New("bad handle")
	}
	g.files[p] = append(g.files[p], data...)
	g.chunks++
	return nil
}
func (g *fakeGuest) FileClose(_ context.Context, h int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.open, h)
	return nil
}
func (g *fakeGuest) Run(_ context.Context, path string, args ...string) (qga.ExecStatus, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ran = append(g.ran, path)
	switch path {
	case "sha256sum":
		sum := sha256.Sum256(g.files[args[0]])
		return qga.ExecStatus{Exited: true, Stdout: []byte(hex.EncodeToString(sum[:]) + "  " + args[0] + "\n")}, nil
	case "dpkg-deb", "rpm":
		if path == "rpm" && args[0] == "-U" {
			return qga.ExecStatus{Exited: true}, nil
		}
		if path == "rpm" && args[0] == "-q" {
			return qga.ExecStatus{Exited: true, Stdout: []byte("1.0.0-1\n")}, nil
		}
		return qga.ExecStatus{Exited: true, Stdout: []byte(g.pkgName + " " + g.pkgArch + "\n")}, nil
	case "dpkg":
		if g.dpkgFail {
			return qga.ExecStatus{Exited: true, ExitCode: 1, Stderr: []byte("dpkg: error: \x1b[31mbroken\n")}, nil
		}
		return qga.ExecStatus{Exited: true}, nil
	case "dpkg-query":
		return qga.ExecStatus{Exited: true, Stdout: []byte("1.0.0\n")}, nil
	case "rm":
		delete(g.files, args[1])
		return qga.ExecStatus{Exited: true}, nil
	}
	return qga.ExecStatus{Exited: true, ExitCode: 127}, fmt.Errorf("fake: no command %s", path)
}

type fakeHost struct {
	info        DomainInfo
	agent       string // version the agent answers with; "" = not answering
	answerAfter int    // the agent answers only after this many AgentVersion calls following EnableChannel
	enabled     bool
	calls       int
}

func (h *fakeHost) Domain(context.Context, string) (DomainInfo, error) { return h.info, nil }
func (h *fakeHost) AgentVersion(context.Context, string) (string, error) {
	if h.enabled {
		h.calls++
		if h.calls > h.answerAfter {
			return "v1.0.0", nil
		}
	}
	if h.agent == "" {
		return "", errors.New("no agent")
	}
	return h.agent, nil
}
func (h *fakeHost) EnableChannel(context.Context, string) (string, error) {
	h.enabled = true
	return "channel hot-plugged", nil
}

// pkgDir writes agent packages named like packaging/build.sh's into a temporary directory.
func pkgDir(t *testing.T, names ...string) string {
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(strings.Repeat("kvmnet-agent "+n+"\n", 4000)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func running() DomainInfo { return DomainInfo{State: "running", QGAChannel: true} }

func TestInstall(t *testing.T) {
	shipped := []string{"kvmnet-agent_1.0.0_amd64.deb", "kvmnet-agent_1.0.0_arm64.deb", "kvmnet-agent-1.0.0.x86_64.rpm", "kvmnet-agent-1.0.0.aarch64.rpm"}
	for _, tc := range []struct {
		name      string
		host      *fakeHost
		guest     func(*fakeGuest)
		opts      func(*Options, string)
		action    string
		errIs     error
		errHas    []string
		installed bool
		uploaded  bool
	}{
		{name: "fresh deb guest", host: &fakeHost{info: running()}, action: ActionInstalled, installed: true, uploaded: true},
		{name: "agent answers late", host: &fakeHost{info: running(), answerAfter: 3}, action: ActionInstalled, installed: true, uploaded: true},
		{name: "rpm arm64 guest", host: &fakeHost{info: running()}, guest: func(g *fakeGuest) {
			g.os = qga.OSInfo{ID: "rhel", Machine: "aarch64"}
			g.pkgArch = "aarch64"
		}, action: ActionInstalled, uploaded: true},
		{name: "already current: nothing to do", host: &fakeHost{info: running(), agent: "v1.0.0"}, action: ActionNone},
		{name: "other version without --upgrade", host: &fakeHost{info: running(), agent: "v0.9.0"}, action: ActionNone},
		{name: "other version with --upgrade", host: &fakeHost{info: running(), agent: "v0.9.0"}, opts: func(o *Options, _ string) { o.Upgrade = true },
			action: ActionInstalled, installed: true, uploaded: true},
		{name: "dry run", host: &fakeHost{info: running()}, opts: func(o *Options, _ string) { o.DryRun = true }, action: ActionDryRun},
		{name: "shut off", host: &fakeHost{info: DomainInfo{State: "shut off", QGAChannel: true}}, errIs: ErrPrecondition, errHas: []string{"shut off", "virsh start vm1"}},
		{name: "no QGA channel", host: &fakeHost{info: DomainInfo{State: "running"}}, errIs: ErrPrecondition, errHas: []string{"org.qemu.guest_agent.0", "virsh edit vm1"}},
		{name: "QGA not answering", host: &fakeHost{info: running()}, guest: func(g *fakeGuest) {
			g.pingErr = fmt.Errorf("%w: Guest agent is not responding", qga.ErrNotResponding)
		}, errIs: ErrPrecondition, errHas: []string{"guest-ping", "systemctl status qemu-guest-agent"}},
		{name: "guest-exec blocked", host: &fakeHost{info: running()}, guest: func(g *fakeGuest) {
			g.enabled["guest-exec"], g.enabled["guest-file-write"] = false, false
		}, errIs: ErrPrecondition, errHas: []string{"guest-file-write, guest-exec", "FILTER_RPC_ARGS", "/etc/sysconfig/qemu-ga", "block-rpcs="}},
		{name: "unsupported OS", host: &fakeHost{info: running()}, guest: func(g *fakeGuest) { g.os.ID = "alpine" },
			errIs: ErrUnsupported, errHas: []string{`"alpine"`}},
		{name: "unsupported arch", host: &fakeHost{info: running()}, guest: func(g *fakeGuest) { g.os.Machine = "ppc64le" },
			errIs: ErrUnsupported, errHas: []string{`"ppc64le"`}},
		{name: "--package of the wrong arch (name)", host: &fakeHost{info: running()}, opts: func(o *Options, dir string) {
			o.Package = filepath.Join(dir, "kvmnet-agent_1.0.0_arm64.deb")
		}, errIs: ErrPrecondition, errHas: []string{"built for arm64 but the guest is amd64"}},
		{name: "--package of the wrong family", host: &fakeHost{info: running()}, opts: func(o *Options, dir string) {
			o.Package = filepath.Join(dir, "kvmnet-agent-1.0.0.x86_64.rpm")
		}, errIs: ErrPrecondition, errHas: []string{".rpm package but the guest installs deb"}},
		{name: "--package renamed, wrong arch inside", host: &fakeHost{info: running()}, guest: func(g *fakeGuest) { g.pkgArch = "arm64" },
			opts: func(o *Options, dir string) {
				b, _ := os.ReadFile(filepath.Join(dir, "kvmnet-agent_1.0.0_arm64.deb"))
				p := filepath.Join(dir, "agent.deb")
				_ = os.WriteFile(p, b, 0o644)
				o.Package = p
			}, errIs: ErrNothingInstalled, errHas: []string{"built for arm64 but the guest is amd64"}, uploaded: true},
		{name: "corrupted upload", host: &fakeHost{info: running()}, opts: func(o *Options, _ string) { o.CorruptUpload = true },
			errIs: ErrNothingInstalled, errHas: []string{"corrupted", "sha256 in the guest"}, uploaded: true},
		{name: "dpkg fails", host: &fakeHost{info: running()}, guest: func(g *fakeGuest) { g.dpkgFail = true },
			errHas: []string{"dpkg -i /var/tmp/kvmnet-agent-install.deb in the guest failed (exit 1)", "?[31mbroken"}, installed: true, uploaded: true},
		{name: "not confirmed, no --yes", host: &fakeHost{info: running()}, opts: func(o *Options, _ string) { o.Yes = false },
			errIs: ErrPrecondition, errHas: []string{"pass --yes"}},
		{name: "declined", host: &fakeHost{info: running()}, opts: func(o *Options, _ string) {
			o.Yes, o.Confirm = false, func(string) (bool, error) { return false, nil }
		}, errIs: ErrPrecondition, errHas: []string{"declined"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := pkgDir(t, shipped...)
			g := newFakeGuest()
			if tc.guest != nil {
				tc.guest(g)
			}
			var progress []int64
			o := Options{PackageDir: dir, Yes: true, ChunkSize: 100 << 10, WaitAgent: 5 * time.Second,
				Progress: func(done, total int64) { progress = append(progress, done) }}
			if tc.opts != nil {
				tc.opts(&o, dir)
			}
			res, err := New(tc.host, g, "vm1", o).Install(context.Background())
			wantErr := tc.errIs != nil || len(tc.errHas) > 0
			if wantErr != (err != nil) {
				t.Fatalf("err = %v, result %+v", err, res)
			}
			if tc.errIs != nil && !errors.Is(err, tc.errIs) {
				t.Errorf("err %v is not %v", err, tc.errIs)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q: %v", s, err)
				}
			}
			if strings.ContainsRune(fmt.Sprint(err), 0x1b) {
				t.Errorf("guest output reached the error unescaped: %q", err)
			}
			if tc.action != "" && res.Action != tc.action {
				t.Errorf("action = %q, want %q (%s)", res.Action, tc.action, res.Message)
			}
			if got := slices.Contains(g.ran, "dpkg") || slices.Contains(g.ran, "rpm") && res.Action == ActionInstalled; got != (tc.installed || (tc.action == ActionInstalled)) {
				t.Errorf("installed = %v (ran %v)", got, g.ran)
			}
			if got := g.chunks > 0; got != tc.uploaded {
				t.Errorf("uploaded = %v", got)
			}
			if len(g.files) != 0 {
				t.Errorf("files left in the guest: %v", slices.Collect(mapKeys(g.files)))
			}
			if res.Action == ActionInstalled {
				if !tc.host.enabled || res.AgentVersion != "v1.0.0" || res.InstalledVersion == "" {
					t.Errorf("result %+v", res)
				}
				if len(progress) < 2 || progress[len(progress)-1] != res.Package.Size {
					t.Errorf("progress %v, size %d", progress, res.Package.Size)
				}
			} else if tc.host.enabled {
				t.Error("channel enabled although nothing was installed")
			}
		})
	}
}

func mapKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestPackageVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.0":                 "1.2.0",
		"v1.2.0-5-gabc123":       "1.2.0+5.gabc123",
		"v1.2.0-5-gabc123-dirty": "1.2.0+5.gabc123.dirty",
		"abc123-dirty":           "0.0.0+git.abc123.dirty",
		"0.0.0-dev":              "0.0.0+dev",
	} {
		if got := PackageVersion(in); got != want {
			t.Errorf("PackageVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseName(t *testing.T) {
	for name, want := range map[string]Target{
		"kvmnet-agent_0.0.0+git.abc_amd64.deb":   {FamilyDeb, "amd64"},
		"/x/kvmnet-agent-1.2.0+5.g1.aarch64.rpm": {FamilyRPM, "arm64"},
		"whatever.deb":                           {Family: FamilyDeb},
	} {
		if got, _, _ := ParseName(name); got != want {
			t.Errorf("ParseName(%q) = %v, want %v", name, got, want)
		}
	}
}
