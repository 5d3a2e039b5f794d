package firewall

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/runner"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// The integration tests load real rule sets into network namespaces they create, read them back
// with the Reader through the real runner (ip netns exec / nsenter), evaluate, apply the fix
// primitives, and check the verdicts against real traffic: a "guest" namespace behind the firewall
// namespace's bridge, and an "internet" namespace with an HTTP listener on 203.0.113.1:80 that has
// no route back to the guests (only a masqueraded flow can succeed).

const uplink = "up0"

func absTestdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// world is a firewall namespace with a guest and an internet behind it.
type world struct {
	fw, guest, inet *testenv.Netns
}

// newWorld builds the topology. With makeBridge the bridge virbr0 (192.168.122.1/24) is created;
// otherwise it must exist (libvirt made it).
func newWorld(t *testing.T, fw *testenv.Netns, makeBridge bool) *world {
	t.Helper()
	w := &world{fw: fw, guest: testenv.NewNetns(t, "fw"), inet: testenv.NewNetns(t, "fw")}
	if makeBridge {
		fw.MustRun("ip", "link", "add", "virbr0", "type", "bridge")
		fw.MustRun("ip", "addr", "add", "192.168.122.1/24", "dev", "virbr0")
		fw.MustRun("ip", "link", "set", "virbr0", "up")
	}
	fw.Veth("vnet90", w.guest, "eth0")
	fw.MustRun("ip", "link", "set", "vnet90", "master", "virbr0")
	w.guest.MustRun("ip", "addr", "add", "192.168.122.50/24", "dev", "eth0")
	w.guest.MustRun("ip", "route", "add", "default", "via", "192.168.122.1")
	fw.Veth(uplink, w.inet, "wan0")
	fw.MustRun("ip", "addr", "add", "203.0.113.2/24", "dev", uplink)
	fw.MustRun("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	w.inet.MustRun("ip", "addr", "add", "203.0.113.1/24", "dev", "wan0")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("kvmnet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := w.inet.Start("http", nil, "python3", "-m", "http.server", "80", "--bind", "203.0.113.1", "--directory", dir)
	if err := testenv.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		if srv.Exited() {
			return false, fmt.Errorf("http server exited: %s", srv.Output())
		}
		_, err := w.inet.Run("curl", "-sS", "-o", "/dev/null", "--max-time", "2", "http://203.0.113.1/")
		return err == nil, err
	}); err != nil {
		t.Fatal(err)
	}
	return w
}

// reach reports whether the guest gets an HTTP answer from the internet namespace.
func (w *world) reach() bool {
	_, err := w.guest.Run("curl", "-sS", "-o", "/dev/null", "--connect-timeout", "3", "--max-time", "5", "http://203.0.113.1/")
	return err == nil
}

// reachWithin retries reach: a new port on a bridge with STP on (libvirt's default) forwards only
// after the bridge's forward delay.
func (w *world) reachWithin(d time.Duration) bool {
	return testenv.WaitFor(d, 500*time.Millisecond, func() (bool, error) { return w.reach(), nil }) == nil
}

func read(t *testing.T, r runner.Runner, files fs.FS) (*State, snapshot.Firewall) {
	t.Helper()
	st, err := NewReader(r, Options{Files: files}).Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st, st.Snapshot([]snapshot.Network{defaultNet()}, uplink)
}

func egressFlow(t *testing.T, fw snapshot.Firewall) snapshot.Flow {
	t.Helper()
	eg := flowsByKind(fw, "egress")
	if len(eg) == 0 {
		t.Fatalf("no egress flow in %+v", fw)
	}
	return eg[0]
}

var counters = regexp.MustCompile(`\[\d+:\d+\]|packets \d+ bytes \d+|(?m)^#.*$`)

// ruleset is every backend's rules in the namespace, without counters and timestamps.
func ruleset(t *testing.T, r runner.Runner) string {
	t.Helper()
	var b strings.Builder
	for _, argv := range [][]string{{"iptables-save"}, {"iptables-legacy-save"}, {"nft", "list", "ruleset"}} {
		out, err := r.Run(context.Background(), argv[0], argv[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(counters.ReplaceAllString(string(out), ""))
	}
	return b.String()
}

// ufwEnv runs a real ufw inside fw's network namespace and a private mount namespace in which
// /etc/ufw, /lib/ufw and /etc/default/ufw are temp copies: the machine's UFW configuration and
// firewall are never touched. It returns the runner for that namespace pair and the copy's root.
func ufwEnv(t *testing.T, fw *testenv.Netns) (runner.Runner, string) {
	t.Helper()
	root := t.TempDir()
	for src, dst := range map[string]string{"/etc/ufw": "etc/ufw", "/lib/ufw": "lib/ufw"} {
		if err := os.CopyFS(filepath.Join(root, dst), os.DirFS(src)); err != nil {
			t.Fatalf("copy %s: %v", src, err)
		}
	}
	def, err := os.ReadFile("/etc/default/ufw")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/default"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/default/ufw"), def, 0o644); err != nil {
		t.Fatal(err)
	}
	// No sysctl changes from ufw-init, and a marker proving the copy is what ufw sees.
	for name, data := range map[string]string{"etc/ufw/sysctl.conf": "", "etc/ufw/kvmnet-test-copy": "1"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	holder := fw.Start("ufw-mountns", nil, "unshare", "-m", "--propagation", "private", "sleep", "infinity")
	pid := holder.Cmd.Process.Pid
	self, _ := os.Readlink("/proc/self/ns/mnt")
	if err := testenv.WaitFor(10*time.Second, 10*time.Millisecond, func() (bool, error) {
		mnt, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return mnt != "" && mnt != self && strings.TrimSpace(string(comm)) == "sleep", fmt.Errorf("mount ns holder not ready")
	}); err != nil {
		t.Fatal(err)
	}
	r := runner.NewExec(runner.InNamespacesOf(pid))
	ctx := context.Background()
	for _, m := range [][2]string{{"etc/ufw", "/etc/ufw"}, {"lib/ufw", "/lib/ufw"}, {"etc/default/ufw", "/etc/default/ufw"}} {
		if _, err := r.Run(ctx, "mount", "--bind", filepath.Join(root, m[0]), m[1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Run(ctx, "test", "-e", "/etc/ufw/kvmnet-test-copy"); err != nil {
		t.Fatalf("refusing to run ufw: the private /etc/ufw copy is not in place: %v", err)
	}
	if _, err := os.Stat("/etc/ufw/kvmnet-test-copy"); err == nil {
		t.Fatal("refusing to run ufw: the bind mount leaked into the machine's mount namespace")
	}
	return r, root
}

// TestLibvirtRealRules: (a) a real private libvirtd (9.x, iptables backend) starts the default
// network in the namespace; the reader finds its LIBVIRT_* chains and MASQUERADE, every guest flow
// is accepted by libvirt's rules, and real traffic passes. (d) Then the rules are flushed: no
// libvirt chains, no masquerade (libvirt_rules_missing evidence), and real traffic fails, as the
// evaluator's "no NAT" predicts.
func TestLibvirtRealRules(t *testing.T) {
	testenv.Require(t, "ip", "unshare", "nsenter", "mount", "libvirtd", "virtlogd", "virsh", "dnsmasq",
		"iptables-save", "iptables-legacy-save", "nft", "curl", "python3")
	ns := testenv.NewNetns(t, "fw")
	lv := testenv.StartLibvirtd(t, ns, testenv.LibvirtdOptions{DefaultNetwork: testenv.DefaultNetworkAutostart})
	if err := testenv.WaitFor(60*time.Second, 100*time.Millisecond, func() (bool, error) {
		out, err := lv.Virsh("net-list", "--name")
		return strings.Contains(out, "default"), err
	}); err != nil {
		t.Fatalf("default network did not start: %v", err)
	}
	// Read as the host would be read: through nsenter into libvirtd's mount+network namespaces.
	r := runner.NewExec(runner.InNamespacesOf(lv.HolderPID()))
	st, fw := read(t, r, os.DirFS(fmt.Sprintf("/proc/%d/root", lv.HolderPID())))
	t.Logf("evidence: %s", fw.Evidence)
	if strings.Join(fw.LibvirtChains, ",") != "LIBVIRT_FWI,LIBVIRT_FWO,LIBVIRT_FWX,LIBVIRT_INP,LIBVIRT_OUT,LIBVIRT_PRT" ||
		fw.Backend != "iptables-nft" || !strings.Contains(strings.Join(fw.Masquerade, ","), "192.168.122.0/24") {
		t.Fatalf("libvirt's rules not found: chains=%v backend=%s masq=%v", fw.LibvirtChains, fw.Backend, fw.Masquerade)
	}
	for _, f := range fw.Flows {
		if f.Verdict != snapshot.VerdictAccept {
			t.Fatalf("flow %q: %s by %q in %s", f.Description, f.Verdict, f.Rule, f.Chain)
		}
	}
	eg := egressFlow(t, fw)
	if eg.Rule != "-A LIBVIRT_FWO -s 192.168.122.0/24 -i virbr0 -j ACCEPT" || eg.NAT != "masquerade" {
		t.Fatalf("egress decided by %q nat %q", eg.Rule, eg.NAT)
	}
	if st.IPTablesLegacy != nil {
		t.Fatalf("unexpected legacy tables")
	}

	w := newWorld(t, ns, false)
	if !w.reachWithin(30 * time.Second) {
		t.Fatal("kernel disagrees: evaluator says accept+masquerade, but the guest cannot reach the internet namespace")
	}

	t.Run("flushed", func(t *testing.T) {
		for _, table := range []string{"filter", "nat", "mangle"} {
			ns.MustRun("iptables", "-t", table, "-F")
			ns.MustRun("iptables", "-t", table, "-X")
		}
		_, fw := read(t, r, nil)
		if len(fw.LibvirtChains) != 0 || fw.LibvirtNFTable || len(fw.Masquerade) != 0 {
			t.Fatalf("after flush: chains=%v nft=%v masq=%v", fw.LibvirtChains, fw.LibvirtNFTable, fw.Masquerade)
		}
		if !strings.Contains(fw.Evidence, "libvirt_chains=0") || !strings.Contains(fw.Evidence, "libvirt_nftable=false") ||
			!strings.Contains(fw.Evidence, "masquerade=-") {
			t.Fatalf("evidence %q", fw.Evidence)
		}
		eg := egressFlow(t, fw)
		if eg.Verdict != snapshot.VerdictAccept || eg.NAT != "" || eg.NATRule != "no source NAT rule matched" {
			t.Fatalf("egress after flush: %+v", eg)
		}
		if w.reach() {
			t.Fatal("kernel disagrees: without masquerade the internet namespace cannot answer, yet the guest reached it")
		}
	})
}

// TestUFWRoutedDeny: (b) libvirt 10's native nftables table plus a real UFW (enabled with its stock
// default routed deny, run in a private mount namespace). libvirt's table accepts the guest's
// packet, but UFW's FORWARD chain drops it: the evaluator says drop by UFW's policy, the kernel
// agrees. The fix primitive (run by the same ufw) makes the verdict accept, and traffic passes.
func TestUFWRoutedDeny(t *testing.T) {
	testenv.Require(t, "ip", "unshare", "nsenter", "mount", "ufw", "iptables-save", "iptables-legacy-save", "nft", "curl", "python3")
	ns := testenv.NewNetns(t, "fw")
	w := newWorld(t, ns, true)
	ns.MustRun("nft", "-f", absTestdata(t, "libvirt10-nat.nft"))
	if !w.reach() {
		t.Fatal("before UFW: libvirt10 table alone should let the guest out")
	}
	r, root := ufwEnv(t, ns)
	if _, err := r.Run(context.Background(), "ufw", "--force", "enable"); err != nil {
		t.Fatal(err)
	}
	files := os.DirFS(root)
	_, fw := read(t, r, files)
	t.Logf("evidence: %s", fw.Evidence)
	if !fw.UFW.Enabled || fw.UFW.DefaultRouted != "deny" || len(fw.UFW.RouteAllows) != 0 || !fw.LibvirtNFTable {
		t.Fatalf("ufw %+v libvirt nft %v", fw.UFW, fw.LibvirtNFTable)
	}
	eg := egressFlow(t, fw)
	if eg.Verdict != snapshot.VerdictDrop || eg.Rule != "policy DROP of FORWARD" || eg.Chain != "iptables-nft filter FORWARD" ||
		fw.ForwardPolicySetBy != "ufw" || eg.NAT != "masquerade" {
		t.Fatalf("egress under UFW: %+v (policy set by %q)", eg, fw.ForwardPolicySetBy)
	}
	if !strings.Contains(strings.Join(eg.Trace, "\n"), "guest_output: ip saddr 192.168.122.0/24 iifname \"virbr0\" accept") {
		t.Fatalf("trace does not show libvirt's accept before UFW's drop:\n%s", strings.Join(eg.Trace, "\n"))
	}
	if w.reach() {
		t.Fatal("kernel disagrees: evaluator says drop, but the guest got through")
	}

	fix, err := UFWRoutedFix("virbr0", uplink)
	if err != nil {
		t.Fatal(err)
	}
	before := ruleset(t, r)
	userRules, _ := os.ReadFile(filepath.Join(root, "etc/ufw/user.rules"))
	steps, err := NewFixer(r).Apply(context.Background(), fix, true)
	if err != nil || len(steps) != 2 || steps[0].Ran {
		t.Fatalf("dry run: %+v %v", steps, err)
	}
	after, _ := os.ReadFile(filepath.Join(root, "etc/ufw/user.rules"))
	if ruleset(t, r) != before || string(after) != string(userRules) {
		t.Fatal("dry run changed the rule set or ufw's user.rules")
	}

	if _, err := NewFixer(r).Apply(context.Background(), fix, false); err != nil {
		t.Fatal(err)
	}
	_, fw = read(t, r, files)
	eg = egressFlow(t, fw)
	if eg.Verdict != snapshot.VerdictAccept || eg.Rule != "-A ufw-user-forward -i virbr0 -o up0 -j ACCEPT" {
		t.Fatalf("egress after fix: %+v", eg)
	}
	for _, f := range fw.Flows {
		if f.Verdict != snapshot.VerdictAccept {
			t.Fatalf("flow %q after fix: %s by %q", f.Description, f.Verdict, f.Rule)
		}
	}
	if strings.Join(fw.UFW.RouteAllows, ",") != "in on virbr0 out on up0" || strings.Join(fw.UFW.InputAllows, ",") != "in on virbr0" {
		t.Fatalf("ufw after fix %+v", fw.UFW)
	}
	if !fw.UFW.Enabled {
		t.Fatal("the fix disabled UFW")
	}
	if !w.reach() {
		t.Fatal("kernel disagrees: evaluator says accept after the fix, but the guest cannot get out")
	}
}

// TestDockerForwardDrop: (c) Docker's FORWARD DROP with DOCKER-USER/DOCKER chains, next to
// libvirt 10's native table: blocked (evaluator and kernel); the DOCKER-USER fix makes it accept,
// applying twice adds nothing, Docker's policy stays DROP, and a dry run changes nothing.
func TestDockerForwardDrop(t *testing.T) {
	testenv.Require(t, "ip", "iptables-restore", "iptables-save", "iptables-legacy-save", "nft", "curl", "python3")
	ns := testenv.NewNetns(t, "fw")
	w := newWorld(t, ns, true)
	ns.MustRun("nft", "-f", absTestdata(t, "libvirt10-nat.nft"))
	ns.MustRun("iptables-restore", absTestdata(t, "docker-forward-drop.rules"))
	r := runner.NewExec(runner.InNetns(ns.Name))
	st, fw := read(t, r, nil)
	eg := egressFlow(t, fw)
	if !fw.Docker || fw.ForwardPolicy != "DROP" || fw.ForwardPolicySetBy != "docker" ||
		eg.Verdict != snapshot.VerdictDrop || eg.Rule != "policy DROP of FORWARD" {
		t.Fatalf("docker: %+v egress %+v", fw, eg)
	}
	if w.reach() {
		t.Fatal("kernel disagrees: evaluator says drop, but the guest got through")
	}
	fix, err := DockerForwardFix("virbr0", uplink, "192.168.122.0/24", st.DockerIptables())
	if err != nil {
		t.Fatal(err)
	}
	before := ruleset(t, r)
	if _, err := NewFixer(r).Apply(context.Background(), fix, true); err != nil {
		t.Fatal(err)
	}
	if ruleset(t, r) != before {
		t.Fatal("dry run changed the rule set")
	}
	steps, err := NewFixer(r).Apply(context.Background(), fix, false)
	if err != nil || !steps[0].Ran || !steps[1].Ran {
		t.Fatalf("apply: %+v %v", steps, err)
	}
	_, fw = read(t, r, nil)
	eg = egressFlow(t, fw)
	if eg.Verdict != snapshot.VerdictAccept || eg.Rule != "-A DOCKER-USER -s 192.168.122.0/24 -i virbr0 -o up0 -j ACCEPT" || fw.ForwardPolicy != "DROP" {
		t.Fatalf("after fix: egress %+v policy %s", eg, fw.ForwardPolicy)
	}
	if ret := flowsByKind(fw, "return")[0]; ret.Verdict != snapshot.VerdictAccept || !strings.Contains(ret.Rule, "DOCKER-USER") {
		t.Fatalf("return path after fix: %+v", ret)
	}
	once := ruleset(t, r)
	steps, err = NewFixer(r).Apply(context.Background(), fix, false)
	if err != nil || steps[0].Ran || !steps[0].AlreadyPresent || !steps[1].AlreadyPresent || ruleset(t, r) != once {
		t.Fatalf("second apply was not a no-op: %+v %v", steps, err)
	}
	if !w.reach() {
		t.Fatal("kernel disagrees: evaluator says accept after the fix, but the guest cannot get out")
	}
}

// TestLibvirtNftablesNative: (e) a table resembling libvirt 10.x's `ip libvirt_network`, loaded
// with nft -f: found as libvirt's table, egress accepted by guest_output and masqueraded by
// guest_nat, inbound rejected, and the kernel agrees.
func TestLibvirtNftablesNative(t *testing.T) {
	testenv.Require(t, "ip", "nft", "iptables-save", "iptables-legacy-save", "curl", "python3")
	ns := testenv.NewNetns(t, "fw")
	w := newWorld(t, ns, true)
	ns.MustRun("nft", "-f", absTestdata(t, "libvirt10-nat.nft"))
	_, fw := read(t, runner.NewExec(runner.InNetns(ns.Name)), nil)
	if !fw.LibvirtNFTable || fw.Backend != "nftables" || len(fw.LibvirtChains) != 0 || strings.Join(fw.Masquerade, ",") != "192.168.122.0/24" {
		t.Fatalf("%+v", fw)
	}
	eg := egressFlow(t, fw)
	if eg.Verdict != snapshot.VerdictAccept || eg.Chain != "nftables ip libvirt_network guest_output" || eg.NAT != "masquerade" ||
		!strings.Contains(eg.NATRule, "masquerade to :1024-65535") {
		t.Fatalf("egress %+v", eg)
	}
	if !w.reach() {
		t.Fatal("kernel disagrees: evaluator says accept+masquerade, but the guest cannot get out")
	}
	// Inbound new connections to the guest are rejected by guest_input, in the evaluator and the kernel.
	st, _ := read(t, runner.NewExec(runner.InNetns(ns.Name)), nil)
	res := st.Evaluate(HookForward, Packet{In: uplink, Out: "virbr0", Src: mustAddr("203.0.113.1"), Dst: mustAddr("192.168.122.50"),
		Proto: "tcp", SPort: 5555, DPort: 80, State: StateNew})
	if res.Verdict != "reject" || res.Rule != `oifname "virbr0" reject` {
		t.Fatalf("inbound: %+v", res)
	}
	w.inet.MustRun("ip", "route", "add", "192.168.122.0/24", "via", "203.0.113.2")
	dir := t.TempDir()
	srv := w.guest.Start("guest-http", nil, "python3", "-m", "http.server", "80", "--bind", "192.168.122.50", "--directory", dir)
	if err := testenv.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		_, err := w.guest.Run("curl", "-sS", "-o", "/dev/null", "--max-time", "2", "http://192.168.122.50/")
		return err == nil && !srv.Exited(), err
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := w.inet.Run("curl", "-sS", "-o", "/dev/null", "--connect-timeout", "3", "http://192.168.122.50/")
	// A reject answers at once with an ICMP error (curl: "Failed to connect ... Couldn't connect");
	// a drop would run into the 3 s connect timeout.
	if err == nil || !strings.Contains(out, "Failed to connect") || time.Since(start) > 2500*time.Millisecond {
		t.Fatalf("kernel disagrees: inbound should be rejected at once: %v %s (%s)", err, out, time.Since(start))
	}
	// Control: the guest's listener is reachable when the firewall does not stand in between.
	ns.MustRun("nft", "delete", "table", "ip", "libvirt_network")
	if _, err := w.inet.Run("curl", "-sS", "-o", "/dev/null", "--max-time", "5", "http://192.168.122.50/"); err != nil {
		t.Fatalf("control without libvirt's table failed, so the reject above proved nothing: %v", err)
	}
}
