//go:build lab

package installagent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/e2e"
)

const (
	vm    = "q1" // the guest without kvmnet-agent
	noQGA = "q2" // a running domain without a qemu-guest-agent channel
)

var (
	lab  *e2e.Lab
	repo string
	dist string
)

func TestMain(m *testing.M) {
	e2e.Main(m, e2e.Suite{
		Title:   "install-agent",
		NameEnv: "KVMNET_LAB_QGA_NAME",
		Suffix:  "qga",
		Tools:   []string{"virsh", "qemu-system-x86_64", "mmdebstrap", "dpkg-deb"},
		Prerequisites: func(r string) string {
			repo, dist = r, filepath.Join(r, "dist")
			if debs, _ := filepath.Glob(filepath.Join(dist, "kvmnet-agent_*_amd64.deb")); len(debs) == 0 {
				return "dist/kvmnet-agent_*_amd64.deb missing: run `make lab-packages` (install-agent uploads it)"
			}
			return ""
		},
		Run: func(m *testing.M, l *e2e.Lab) int {
			lab = l
			return run(m)
		},
	})
}

func run(m *testing.M) int {
	ctx := context.Background()
	img := lab.Script(ctx, "image", "--no-agent")
	if img.Code != 0 {
		fmt.Fprintf(os.Stderr, "image --no-agent:\n%s\n", img)
		return 1
	}
	if res := lab.Script(ctx, "up"); res.Code != 0 {
		fmt.Fprintf(os.Stderr, "scripts/lab/up:\n%s\n", res)
		return 1
	}
	// No kvmnet channel either: install-agent must add it (live and persistent).
	res := lab.Script(ctx, "vm", "create", vm, "--names", "enp1s0", "--no-agent-channel", "--image", strings.TrimSpace(img.Stdout))
	if res.Code != 0 {
		fmt.Fprintf(os.Stderr, "create %s:\n%s\n", vm, res)
		return 1
	}
	fmt.Printf("guest %s ready (lease + qemu-guest-agent) after %s\n", vm, res.Took.Round(time.Second))
	return m.Run()
}

// ctl runs kvmnetctl on the lab host with the shipped packages taken from dist/.
func ctl(ctx context.Context, args ...string) e2e.Result { return lab.Ctl(ctx, args...) }

func installArgs(extra ...string) []string {
	return append([]string{"guests", "install-agent", vm, "--yes", "--package-dir", dist, "--timeout", "20s"}, extra...)
}

// notInstalled fails unless the guest has no kvmnet-agent package and the domain no kvmnet channel.
func notInstalled(t *testing.T, ctx context.Context, dom string) {
	t.Helper()
	if dom == vm {
		if res := lab.Exec(ctx, vm, "dpkg-query", "-W", "kvmnet-agent"); res.Code == 0 {
			t.Fatalf("kvmnet-agent is installed in %s although install-agent failed:\n%s", vm, res)
		}
		if res := lab.Exec(ctx, vm, "/bin/sh", "-c", "ls /var/tmp/kvmnet-agent-install.* 2>/dev/null"); strings.TrimSpace(res.Stdout) != "" {
			t.Errorf("upload left behind in %s: %s", vm, res.Stdout)
		}
	}
	if res := virsh(ctx, "dumpxml", dom); strings.Contains(res.Stdout, "org.kvmnet.agent.0") {
		t.Errorf("%s got the kvmnet channel although install-agent failed", dom)
	}
}

// refused runs install-agent and checks it fails with every wanted fragment in its error.
func refused(t *testing.T, ctx context.Context, args []string, want ...string) {
	t.Helper()
	res := ctl(ctx, args...)
	if res.Code == 0 {
		t.Fatalf("install-agent succeeded, want a refusal:\n%s", res)
	}
	for _, w := range want {
		if !strings.Contains(res.Stderr, w) {
			t.Errorf("error lacks %q:\n%s", w, res)
		}
	}
	if !strings.Contains(res.Stderr, "nothing was installed") {
		t.Errorf("error does not say nothing was installed:\n%s", res)
	}
}

func gsh(ctx context.Context, t *testing.T, script string) {
	t.Helper()
	if res := lab.Exec(ctx, vm, "/bin/sh", "-c", script); res.Code != 0 {
		t.Fatalf("in %s: %s:\n%s", vm, script, res)
	}
}

// qgaEnabled waits (bounded) until qemu-guest-agent answers guest-info with cmd enabled or not: a
// restart scheduled in the guest has then happened.
func qgaEnabled(ctx context.Context, t *testing.T, cmd string, want bool) {
	t.Helper()
	if err := e2e.Poll(ctx, 120*time.Second, time.Second, func() error {
		r := virsh(ctx, "qemu-agent-command", vm, `{"execute":"guest-info"}`, "--timeout", "5")
		if r.Code != 0 {
			return fmt.Errorf("guest-info: %s", r.Stderr)
		}
		var info struct {
			Return struct {
				Commands []struct {
					Name    string `json:"name"`
					Enabled bool   `json:"enabled"`
				} `json:"supported_commands"`
			} `json:"return"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &info); err != nil {
			return err
		}
		for _, c := range info.Return.Commands {
			if c.Name == cmd && c.Enabled == want {
				return nil
			}
		}
		return fmt.Errorf("qemu-guest-agent: %s enabled is not %v yet", cmd, want)
	}); err != nil {
		t.Fatal(err)
	}
}

type status struct {
	Guests []struct {
		Name    string `json:"name"`
		Healthy bool   `json:"healthy"`
		Agent   struct {
			Transport string `json:"transport"`
			Reachable bool   `json:"reachable"`
			Version   string `json:"version"`
			QGA       *struct {
				Answered   bool     `json:"answered"`
				OS         string   `json:"os"`
				Arch       string   `json:"arch"`
				Interfaces []string `json:"interfaces"`
			} `json:"qga"`
		} `json:"agent"`
		NICs []struct {
			MAC         string   `json:"mac"`
			GuestIfname string   `json:"guest_ifname"`
			GuestIPv4   []string `json:"guest_ipv4"`
		} `json:"nics"`
		Findings []struct {
			Code     string   `json:"code"`
			Severity string   `json:"severity"`
			Fix      string   `json:"fix"`
			Evidence []string `json:"evidence"`
		} `json:"findings"`
	} `json:"guests"`
}

func guestStatus(ctx context.Context, t *testing.T) (status, e2e.Result) {
	t.Helper()
	res := ctl(ctx, "guests", "status", vm, "-o", "json", "--no-checks")
	var s status
	if res.Code > 1 {
		t.Fatalf("guests status:\n%s", res)
	}
	if err := json.Unmarshal([]byte(res.Stdout), &s); err != nil || len(s.Guests) != 1 {
		t.Fatalf("guests status: %v\n%s", err, res)
	}
	return s, res
}

func codes(s status) map[string]string {
	out := map[string]string{}
	for _, f := range s.Guests[0].Findings {
		out[f.Code] = f.Fix
	}
	return out
}

// TestInstallAgent is the whole story on one guest: broken network seen through
// qemu-guest-agent, every bad input refused with nothing installed, then install-agent, guests fix,
// and the guest's own curl.
func TestInstallAgent(t *testing.T) {
	ctx := context.Background()
	if res := lab.Script(ctx, "fault", "profile_wrong_ifname", "inject", vm); res.Code != 0 {
		t.Fatalf("inject profile_wrong_ifname:\n%s", res)
	}

	t.Run("status through qemu-guest-agent", func(t *testing.T) {
		var s status
		var res e2e.Result
		// NetworkManager drops the address once the profile bound to eth0 replaced the working one.
		err := e2e.Poll(ctx, 90*time.Second, 2*time.Second, func() error {
			s, res = guestStatus(ctx, t)
			if g := s.Guests[0]; len(g.NICs) != 1 || len(g.NICs[0].GuestIPv4) != 0 {
				return fmt.Errorf("guest still has an address: %+v", g.NICs)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, res)
		}
		g := s.Guests[0]
		if g.Agent.Reachable || g.Agent.QGA == nil || !g.Agent.QGA.Answered || g.Agent.QGA.Arch != "x86_64" ||
			!strings.Contains(g.Agent.QGA.OS, "Debian") {
			t.Errorf("agent = %+v", g.Agent)
		}
		if g.NICs[0].GuestIfname != "enp1s0" {
			t.Errorf("guest_ifname = %q, want enp1s0 (from qemu-guest-agent)", g.NICs[0].GuestIfname)
		}
		c := codes(s)
		if fix, ok := c["kvmnet_agent_missing"]; !ok || !strings.HasPrefix(fix, "kvmnetctl guests install-agent "+vm) {
			t.Errorf("kvmnet_agent_missing fix %q (codes %v)", fix, c)
		}
		if _, ok := c["guest_no_ipv4"]; !ok {
			t.Errorf("no guest_no_ipv4 from qemu-guest-agent's interfaces: %v", c)
		}
		table := ctl(ctx, "guests", "status", vm, "--no-checks")
		if !strings.Contains(table.Stdout, "qga") {
			t.Errorf("table row does not say agent=qga:\n%s", table)
		}
		fixRes := ctl(ctx, "guests", "fix", vm, "--yes")
		if fixRes.Code == 0 || !strings.Contains(fixRes.Stderr, "kvmnetctl guests install-agent "+vm) {
			t.Errorf("guests fix before install-agent does not point to it:\n%s", fixRes)
		}
	})

	t.Run("no qemu-guest-agent channel, then shut off", func(t *testing.T) {
		res := lab.Script(ctx, "vm", "create", noQGA, "--no-qga", "--no-agent-channel", "--no-wait")
		if res.Code != 0 {
			t.Fatalf("create %s:\n%s", noQGA, res)
		}
		defer lab.Script(ctx, "vm", "destroy", noQGA)
		args := []string{"guests", "install-agent", noQGA, "--yes", "--package-dir", dist}
		refused(t, ctx, args, "no qemu-guest-agent channel", "org.qemu.guest_agent.0")
		if r := virsh(ctx, "destroy", noQGA); r.Code != 0 {
			t.Fatalf("virsh destroy:\n%s", r)
		}
		refused(t, ctx, args, "the domain is shut off", "virsh start "+noQGA)
		notInstalled(t, ctx, noQGA)
	})

	t.Run("unsupported OS", func(t *testing.T) {
		gsh(ctx, t, "cp /etc/os-release /run/os-release.lab && sed -i 's/^ID=.*/ID=alpine/' /etc/os-release")
		defer gsh(ctx, t, "cat /run/os-release.lab > /etc/os-release")
		refused(t, ctx, installArgs(), `OS id "alpine"`)
		notInstalled(t, ctx, vm)
	})

	t.Run("guest-file blocked", func(t *testing.T) {
		// qemu-ga 7.2 splits block-rpcs= at commas; the restart is scheduled so this exec can return.
		gsh(ctx, t, "mkdir -p /etc/qemu && printf '[general]\\nblock-rpcs=guest-file-open,guest-file-write\\n' > /etc/qemu/qemu-ga.conf && "+
			"systemd-run --on-active=1 systemctl restart qemu-guest-agent")
		qgaEnabled(ctx, t, "guest-file-write", false)
		refused(t, ctx, installArgs(), "does not allow guest-file-open, guest-file-write", "block-rpcs=", "FILTER_RPC_ARGS")
		notInstalled(t, ctx, vm)
		gsh(ctx, t, "rm -f /etc/qemu/qemu-ga.conf && systemd-run --on-active=1 systemctl restart qemu-guest-agent")
		qgaEnabled(ctx, t, "guest-file-write", true)
	})

	t.Run("qemu-guest-agent not answering", func(t *testing.T) {
		// Stopped; a transient timer brings it back after 40 s. The exec itself may lose its answer
		// when qemu-ga goes away under it: what counts is that guest-ping stops answering.
		lab.Exec(ctx, vm, "/bin/sh", "-c", "systemd-run --on-active=40 systemctl start qemu-guest-agent && systemctl --no-block stop qemu-guest-agent")
		if err := e2e.Poll(ctx, 60*time.Second, time.Second, func() error {
			if r := virsh(ctx, "qemu-agent-command", vm, `{"execute":"guest-ping"}`, "--timeout", "3"); r.Code == 0 {
				return fmt.Errorf("qemu-guest-agent still answers")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		refused(t, ctx, installArgs("--timeout", "5s"), "qemu-guest-agent does not answer guest-ping")
		qgaEnabled(ctx, t, "guest-file-write", true)
		notInstalled(t, ctx, vm)
	})

	t.Run("corrupted upload", func(t *testing.T) {
		refused(t, ctx, installArgs("--test-corrupt-upload"), "the uploaded copy is corrupted", "sha256 in the guest")
		notInstalled(t, ctx, vm)
	})

	t.Run("--package of the wrong arch", func(t *testing.T) {
		debs, _ := filepath.Glob(filepath.Join(dist, "kvmnet-agent_*_amd64.deb"))
		dir := t.TempDir()
		// By its name: refused before anything is uploaded.
		named := filepath.Join(dir, strings.Replace(filepath.Base(debs[0]), "_amd64.deb", "_arm64.deb", 1))
		copyFile(t, debs[0], named)
		refused(t, ctx, installArgs("--package", named), "built for arm64 but the guest is amd64")
		// Renamed, arm64 inside: caught in the guest by dpkg-deb before dpkg -i.
		arm := filepath.Join(dir, "agent.deb")
		rebuildArch(t, debs[0], arm, "arm64")
		refused(t, ctx, installArgs("--package", arm), "is built for arm64 but the guest is amd64")
		notInstalled(t, ctx, vm)
	})

	t.Run("install, fix, healthy", func(t *testing.T) {
		dry := ctl(ctx, installArgs("--dry-run")...)
		if dry.Code != 0 || !strings.Contains(dry.Stdout, "dry run: would upload") {
			t.Fatalf("dry run:\n%s", dry)
		}
		notInstalled(t, ctx, vm)
		res := ctl(ctx, installArgs("--wait", "3m", "-o", "json")...)
		if res.Code != 0 {
			t.Fatalf("install-agent:\n%s", res)
		}
		var r struct {
			Action           string  `json:"action"`
			InstalledVersion string  `json:"installed_version"`
			AgentVersion     string  `json:"agent_version"`
			UploadMS         int64   `json:"upload_ms"`
			UploadMBps       float64 `json:"upload_mbps"`
			InstallMS        int64   `json:"install_ms"`
			ChannelMS        int64   `json:"channel_ms"`
			FirstAnswerMS    int64   `json:"first_answer_ms"`
			Package          struct {
				Size int64 `json:"size"`
			} `json:"package"`
		}
		if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil || r.Action != "installed" || r.InstalledVersion == "" || r.AgentVersion == "" {
			t.Fatalf("result %+v (%v)\n%s", r, err, res)
		}
		fmt.Printf("MEASURE install-agent: package %d bytes, upload %d ms (%.2f MB/s), install %d ms, channel %d ms, first answer %d ms, total %s\n",
			r.Package.Size, r.UploadMS, r.UploadMBps, r.InstallMS, r.ChannelMS, r.FirstAnswerMS, res.Took.Round(time.Millisecond))

		again := ctl(ctx, installArgs()...)
		if again.Code != 0 || !strings.Contains(again.Stdout, "nothing to do") {
			t.Errorf("second install-agent is not a no-op:\n%s", again)
		}
		s, sres := guestStatus(ctx, t)
		if g := s.Guests[0]; !g.Agent.Reachable || g.Agent.Transport != "virtio-serial" {
			t.Fatalf("agent not reachable after install-agent: %+v\n%s", g.Agent, sres)
		}
		if _, ok := codes(s)["guest_profile_wrong_interface"]; !ok {
			t.Errorf("the kvmnet agent does not name the profile bound to the missing name: %v", codes(s))
		}
		fix := ctl(ctx, "guests", "fix", vm, "--yes")
		if fix.Code != 0 {
			t.Fatalf("guests fix:\n%s", fix)
		}
		if err := e2e.Poll(ctx, 60*time.Second, 2*time.Second, func() error {
			s, _ := guestStatus(ctx, t)
			if !s.Guests[0].Healthy {
				return fmt.Errorf("not healthy: %v", codes(s))
			}
			return lab.GuestEgress(ctx, vm)
		}); err != nil {
			t.Fatal(err)
		}
		if r := virsh(ctx, "dumpxml", "--inactive", vm); !strings.Contains(r.Stdout, "org.kvmnet.agent.0") {
			t.Errorf("the kvmnet channel is not persistent:\n%s", r)
		}
	})
}

// virsh runs virsh against the lab's libvirtd, in its namespaces (scripts/lab/ctl with KVMNETCTL=virsh).
func virsh(ctx context.Context, args ...string) e2e.Result {
	bin, err := exec.LookPath("virsh")
	if err != nil {
		return e2e.Result{Argv: append([]string{"virsh"}, args...), Code: -1, Stderr: err.Error()}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "scripts", "lab", "ctl"), args...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "KVMNET_LAB_NAME="+lab.Name, "KVMNETCTL="+bin)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	t0 := time.Now()
	err = cmd.Run()
	res := e2e.Result{Argv: cmd.Args, Stdout: so.String(), Stderr: se.String(), Took: time.Since(t0)}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		res.Code, res.Stderr = -1, res.Stderr+err.Error()
	}
	return res
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rebuildArch repacks a .deb with another Architecture field (its binary unchanged).
func rebuildArch(t *testing.T, deb, out, arch string) {
	t.Helper()
	dir := t.TempDir()
	for _, argv := range [][]string{{"dpkg-deb", "-R", deb, dir}, {"sed", "-i", "s/^Architecture: .*/Architecture: " + arch + "/", filepath.Join(dir, "DEBIAN", "control")},
		{"dpkg-deb", "-b", dir, out}} {
		if b, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, b)
		}
	}
}
