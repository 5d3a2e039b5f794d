package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fleet"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// sshHost is one test "hypervisor": a network namespace with a private libvirtd and a real sshd in
// front of it, reached from the client namespace over a veth.
type sshHost struct {
	alias, addr string
	ns          *testenv.Netns
	sshd        *testenv.Proc
	lv          *testenv.Libvirtd
}

// TestSSHAndFleetStatus: two real sshd instances, each in its own network namespace fronting its
// own private libvirtd; `--ssh HOST host check|guests status` renders the remote JSON locally, and
// `fleet status` joins both hosts, then shows the host whose sshd was stopped as unreachable.
func TestSSHAndFleetStatus(t *testing.T) {
	testenv.Require(t, "sshd", "ssh", "ssh-keygen", "libvirtd", "virsh", "ip")
	dir, err := os.MkdirTemp("", "kvmssh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "kvmnetctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build kvmnetctl for the remote side: %v\n%s", err, out)
	}
	keygen := func(path string) string {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		b, err := os.ReadFile(path + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	userKey := keygen(filepath.Join(dir, "id"))
	writeFile(t, filepath.Join(dir, "authorized_keys"), userKey+"\n", 0o600)
	// sshd refuses to start without its privilege separation directory (the package creates it at boot).
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}

	client := testenv.NewNetns(t, "sc")
	var hosts []*sshHost
	var known, sshConfig strings.Builder
	for i, name := range []string{"a", "b"} {
		h := &sshHost{alias: "hv-" + name, addr: fmt.Sprintf("10.219.%d.2", i+1)}
		h.ns = testenv.NewNetns(t, "s"+name)
		client.Veth("h19c"+name, h.ns, "h19s"+name)
		client.MustRun("ip", "addr", "add", fmt.Sprintf("10.219.%d.1/24", i+1), "dev", "h19c"+name)
		h.ns.MustRun("ip", "addr", "add", h.addr+"/24", "dev", "h19s"+name)
		h.lv = testenv.StartLibvirtd(t, h.ns, testenv.LibvirtdOptions{})
		// A network only this host has, to tell the answers apart.
		netXML := filepath.Join(dir, "net-"+name+".xml")
		writeFile(t, netXML, "<network><name>only-"+name+"</name><bridge name='virbr-"+name+"'/></network>\n", 0o644)
		if out, err := exec.Command("virsh", "-c", h.lv.URI, "net-define", netXML).CombinedOutput(); err != nil {
			t.Fatalf("net-define on %s: %v: %s", h.alias, err, out)
		}
		hostKey := keygen(filepath.Join(dir, "hostkey_"+name))
		fmt.Fprintf(&known, "%s %s\n", h.addr, hostKey)
		cfg := filepath.Join(dir, "sshd_"+name+".conf")
		writeFile(t, cfg, strings.Join([]string{
			"ListenAddress " + h.addr, "Port 22", "HostKey " + filepath.Join(dir, "hostkey_"+name),
			"PidFile " + filepath.Join(dir, "sshd_"+name+".pid"), "AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
			"PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
			"UsePAM no", "StrictModes no", "SetEnv LIBVIRT_DEFAULT_URI=" + h.lv.URI, ""}, "\n"), 0o600)
		h.sshd = h.ns.Start("sshd-"+name, nil, "/usr/sbin/sshd", "-D", "-e", "-f", cfg)
		fmt.Fprintf(&sshConfig, "Host %s\n  HostName %s\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n"+
			"  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n", h.alias, h.addr, filepath.Join(dir, "id"), filepath.Join(dir, "known_hosts"))
		hosts = append(hosts, h)
	}
	writeFile(t, filepath.Join(dir, "known_hosts"), known.String(), 0o644)
	sshCfg := filepath.Join(dir, "ssh_config")
	writeFile(t, sshCfg, sshConfig.String(), 0o644)
	base := []string{"--ssh-netns", client.Name, "--ssh-config", sshCfg, "--ssh-kvmnetctl", bin}

	for _, h := range hosts {
		if err := testenv.WaitFor(20*time.Second, 50*time.Millisecond, func() (bool, error) {
			out, err := client.Run("ssh", "-F", sshCfg, "-o", "BatchMode=yes", h.alias, "true")
			return err == nil, fmt.Errorf("%v: %s (sshd: %s)", err, out, h.sshd.Output())
		}); err != nil {
			t.Fatalf("sshd on %s never answered: %v", h.alias, err)
		}
	}

	// --ssh HOST host check -o json: the remote report, decoded and rendered here.
	start := time.Now()
	stdout, stderr, code := runCLI(t, nil, append(base, "--ssh", "hv-a", "host", "check", "-o", "json")...)
	t.Logf("--ssh hv-a host check: exit %d in %s", code, time.Since(start))
	var r diagnose.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code > 1 {
		t.Fatalf("--ssh host check: exit %d, %v\nstdout: %s\nstderr: %s", code, err, stdout, stderr)
	}
	if !hasNetwork(r, "only-a") || hasNetwork(r, "only-b") {
		t.Errorf("--ssh hv-a host check shows networks %v, want only-a and not only-b", r.Networks)
	}
	// The table form of guests status on hv-b.
	stdout, stderr, code = runCLI(t, nil, append(base, "--ssh", "hv-b", "guests", "status")...)
	if code > 1 || stderr != "" && code == 0 {
		t.Errorf("--ssh hv-b guests status: exit %d: %s", code, stderr)
	}
	t.Logf("--ssh hv-b guests status (table):\n%s", stdout)

	// guests fix runs there too: an unknown domain is the remote's usage error, passed on as exit 2.
	_, stderr, code = runCLI(t, nil, append(base, "--ssh", "hv-a", "guests", "fix", "nosuchvm", "--dry-run")...)
	if code != ExitUsage || !strings.Contains(stderr, "hv-a: kvmnetctl exited 2") {
		t.Errorf("--ssh hv-a guests fix nosuchvm: exit %d, stderr %q", code, stderr)
	}

	// fleet status over both.
	start = time.Now()
	stdout, stderr, code = runCLI(t, nil, append(base, "fleet", "status", "hv-a", "hv-b", "-o", "json")...)
	t.Logf("fleet status (2 hosts up): exit %d in %s", code, time.Since(start))
	var fr fleet.Report
	if err := json.Unmarshal([]byte(stdout), &fr); err != nil {
		t.Fatalf("fleet status JSON: %v\n%s\n%s", err, stdout, stderr)
	}
	if len(fr.Hosts) != 2 || !fr.Hosts[0].Reachable || !fr.Hosts[1].Reachable ||
		!hasNetwork(*fr.Hosts[0].Report, "only-a") || !hasNetwork(*fr.Hosts[1].Report, "only-b") {
		t.Fatalf("fleet status: %+v\nstderr: %s", fr, stderr)
	}

	// One host down: its sshd stopped (by PID). Its row says so; the other still answers.
	hosts[1].sshd.Stop()
	start = time.Now()
	stdout, stderr, code = runCLI(t, nil, append(base, "fleet", "status", "hv-a", "hv-b")...)
	t.Logf("fleet status (hv-b down): exit %d in %s:\n%s", code, time.Since(start), stdout)
	lines := strings.Split(stdout, "\n")
	if code != ExitFindings || len(lines) < 3 || !strings.HasPrefix(lines[2], "hv-b") || !strings.Contains(lines[2], "unreachable") ||
		!strings.Contains(lines[2], "Connection refused") || strings.Contains(lines[1], "unreachable") {
		t.Errorf("fleet status with hv-b down: exit %d\n%s\nstderr: %s", code, stdout, stderr)
	}
	// --ssh to the down host: a connection error (exit 2) naming ssh.
	_, stderr, code = runCLI(t, nil, append(base, "--ssh", "hv-b", "guests", "status")...)
	if code != ExitUsage || !strings.Contains(stderr, "ssh failed") {
		t.Errorf("--ssh to a down host: exit %d, stderr %q", code, stderr)
	}
}

func hasNetwork(r diagnose.Report, name string) bool {
	for _, n := range r.Networks {
		if n.Name == name {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
