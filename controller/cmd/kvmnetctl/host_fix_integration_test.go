package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/collect"
	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fix"
	"github.com/kvmnet/kvmnet/controller/fixplan"
	"github.com/kvmnet/kvmnet/controller/hostnet"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// fxHost is a private libvirtd (network + mount namespace created by the test) with a stand-in
// uplink, seen by kvmnetctl exactly as `host check` / `host fix` see a real host: hostEnv{pid}.
// /etc/sysctl.d, /etc/ufw, /lib/ufw and /etc/default/ufw are private (tmpfs or bind-mounted
// copies) inside that mount namespace, so no fix can reach the machine's own files.
type fxHost struct {
	lv      *testenv.Libvirtd
	ns      *testenv.Netns
	env     hostEnv
	ufwRoot string
}

var fxCounters = regexp.MustCompile(`\[\d+:\d+\]|packets \d+ bytes \d+|(?m)^#.*$`)

func newFxHost(t *testing.T) *fxHost {
	t.Helper()
	ns := testenv.NewNetns(t, "fx")
	peer := testenv.NewNetns(t, "fx")
	ns.Veth("up0", peer, "up1")
	ns.MustRun("ip", "addr", "add", "203.0.113.2/24", "dev", "up0")
	peer.MustRun("ip", "addr", "add", "203.0.113.1/24", "dev", "up1")
	ns.MustRun("ip", "route", "add", "default", "via", "203.0.113.1")
	lv := testenv.StartLibvirtd(t, ns, testenv.LibvirtdOptions{DefaultNetwork: testenv.DefaultNetworkNone})
	h := &fxHost{lv: lv, ns: ns, env: hostEnv{pid: lv.HolderPID()}}

	// Private /etc/sysctl.d: hostnet persists ip_forward under /proc/PID/root/etc, which without
	// this mount is the machine's own /etc (the holder's mount namespace only privatises libvirt's
	// directories).
	lv.MustNsenter("mount", "-t", "tmpfs", "-o", "mode=0755", "kvmt-fx-sysctld", "/etc/sysctl.d")
	lv.MustNsenter("touch", "/etc/sysctl.d/kvmnet-fx-private")
	if _, err := os.Stat("/etc/sysctl.d/kvmnet-fx-private"); err == nil {
		t.Fatal("refusing to continue: the private /etc/sysctl.d leaked into the machine's mount namespace")
	}

	// Private UFW configuration, as engineer D's firewall tests do.
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
	for name, data := range map[string][]byte{"etc/default/ufw": def, "etc/ufw/sysctl.conf": nil, "etc/ufw/kvmnet-fx-copy": []byte("1")} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range [][2]string{{"etc/ufw", "/etc/ufw"}, {"lib/ufw", "/lib/ufw"}, {"etc/default/ufw", "/etc/default/ufw"}} {
		lv.MustNsenter("mount", "--bind", filepath.Join(root, m[0]), m[1])
	}
	lv.MustNsenter("test", "-e", "/etc/ufw/kvmnet-fx-copy")
	if _, err := os.Stat("/etc/ufw/kvmnet-fx-copy"); err == nil {
		t.Fatal("refusing to continue: the private /etc/ufw leaked into the machine's mount namespace")
	}
	h.ufwRoot = root
	return h
}

// fix runs `kvmnetctl host fix [--only ...] [--dry-run] --yes` in process, the way the command
// does, and returns the result, the human output and the exit code.
func (h *fxHost) fix(t *testing.T, dryRun bool, only ...diagnose.Code) (fix.HostResult, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	g := &Globals{Connect: h.lv.URI, Output: "table", Timeout: 30 * time.Second, Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	fio, err := newFixIO(g, nil, true, dryRun)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := runHostFix(ctx, g, fio, only, dryRun, h.env, fixplan.HostOptions{})
	code := ExitOK
	if err != nil {
		code = exitCode(err)
		fmt.Fprintf(&out, "kvmnetctl: %v\n", err)
	}
	t.Logf("kvmnetctl host fix (dry-run=%v, only=%v) -> exit %d:\n%s%s", dryRun, only, code, out.String(), errOut.String())
	if p := os.Getenv("KVMNET_FX_TRANSCRIPTS"); p != "" {
		cmd := "kvmnetctl host fix --yes"
		if dryRun {
			cmd = "kvmnetctl host fix --dry-run"
		}
		for _, c := range only {
			cmd += " --only " + string(c)
		}
		if f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "===== %s   (exit %d) =====\n%s%s\n", cmd, code, out.String(), errOut.String())
			_ = f.Close()
		}
	}
	return res, out.String(), code
}

// check is `kvmnetctl host check` (collection + diagnosis) against the instance.
func (h *fxHost) check(t *testing.T) diagnose.Report {
	t.Helper()
	g := &Globals{Connect: h.lv.URI, Timeout: 30 * time.Second, Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, r, err := collectReportIn(ctx, g, collect.Options{Timeout: g.Timeout}, h.env)
	if err != nil {
		t.Fatalf("host check: %v", err)
	}
	return r
}

// state is everything a host fix may change, as text: rule sets (counters dropped), networks,
// ip_forward, the private sysctl.d and UFW's user rules.
func (h *fxHost) state(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, argv := range [][]string{{"iptables-save"}, {"nft", "list", "ruleset"}, {"sysctl", "-n", "net.ipv4.ip_forward"},
		{"ls", "-la", "--time-style=+", "/etc/sysctl.d"}, {"cat", "/etc/ufw/user.rules"}} {
		out, err := h.lv.Nsenter(argv...)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "## %s\n%s\n", strings.Join(argv, " "), fxCounters.ReplaceAllString(out, ""))
	}
	nets, err := h.lv.Virsh("net-list", "--all")
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("## net-list --all\n" + nets)
	return b.String()
}

func (h *fxHost) hostCodes(t *testing.T) []diagnose.Code {
	return diagnose.Codes(h.check(t).HostFindings())
}

// toLibvirt10 makes the instance's firewall look like libvirt >= 10.4 with the nftables backend
// (where UFW's and Docker's FORWARD DROP bite NAT guests): libvirt 9's iptables rules are removed
// and engineer D's libvirt10 table for the default network is loaded.
func (h *fxHost) toLibvirt10(t *testing.T) {
	t.Helper()
	for _, table := range []string{"filter", "nat", "mangle"} {
		h.lv.MustNsenter("iptables", "-t", table, "-F")
		h.lv.MustNsenter("iptables", "-t", table, "-X")
	}
	h.lv.MustNsenter("iptables", "-P", "FORWARD", "ACCEPT")
	nft, err := filepath.Abs("../../firewall/testdata/libvirt10-nat.nft")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.lv.Nsenter("nft", "list", "table", "ip", "libvirt_network"); err != nil {
		h.lv.MustNsenter("nft", "-f", nft)
	}
}

func fileHash(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func networkReport(t *testing.T, r diagnose.Report, name string) diagnose.NetworkReport {
	t.Helper()
	for _, n := range r.Networks {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("network %s not in the report: %+v", name, r.Networks)
	return diagnose.NetworkReport{}
}

// TestHostFixRealLibvirtd runs `kvmnetctl host fix` in process against a private libvirtd and real
// rule sets in namespaces the test creates: each finding is produced for real, a dry run changes
// nothing (rule sets, networks, sysctl, files compared), the fix clears the finding (re-checked by
// host check), and the machine's own /etc/sysctl.d and /etc/ufw are never touched.
func TestHostFixRealLibvirtd(t *testing.T) {
	testenv.Require(t, "ip", "unshare", "nsenter", "mount", "libvirtd", "virtlogd", "virsh", "dnsmasq", "iptables",
		"iptables-save", "iptables-restore", "nft", "sysctl", "ufw")
	machineUFW := fileHash(t, "/etc/ufw/user.rules")
	if _, err := os.Stat(hostnet.IPForwardFile); err == nil {
		t.Fatalf("%s exists on the machine before the test: cannot prove the test leaves it alone", hostnet.IPForwardFile)
	}
	t.Cleanup(func() {
		if _, err := os.Stat(hostnet.IPForwardFile); err == nil {
			t.Errorf("the machine's %s was written by the test", hostnet.IPForwardFile)
		}
		if fileHash(t, "/etc/ufw/user.rules") != machineUFW {
			t.Error("the machine's /etc/ufw/user.rules changed")
		}
	})
	h := newFxHost(t)

	t.Run("network missing: dry run changes nothing, fix defines, starts and autostarts default", func(t *testing.T) {
		if got := h.hostCodes(t); !slices.Contains(got, diagnose.CodeNetworkMissing) {
			t.Fatalf("codes %v lack network_missing", got)
		}
		before := h.state(t)
		res, out, code := h.fix(t, true, diagnose.CodeNetworkMissing)
		if code != ExitOK || !res.DryRun || len(res.Steps) != 3 {
			t.Fatalf("dry run: exit %d, %+v", code, res)
		}
		for _, s := range []string{"virsh -c '" + h.lv.URI + "' net-define default.xml", "<forward mode='nat'>", "192.168.122.1",
			"net-start default", "net-autostart default", "dry run: nothing was changed"} {
			if !strings.Contains(out, s) {
				t.Errorf("dry-run output lacks %q", s)
			}
		}
		if after := h.state(t); after != before {
			t.Fatalf("dry run changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		res, out, code = h.fix(t, false, diagnose.CodeNetworkMissing)
		if code != ExitOK || !strings.Contains(out, "re-checked: every finding the steps addressed is gone") {
			t.Fatalf("fix: exit %d\n%s", code, out)
		}
		for _, st := range res.Steps {
			if !st.Done {
				t.Errorf("step %s not done: %+v", st.Step.Kind, st)
			}
		}
		info := h.lv.MustVirsh("net-info", "default")
		if !regexp.MustCompile(`Active:\s+yes`).MatchString(info) || !regexp.MustCompile(`Autostart:\s+yes`).MatchString(info) ||
			!regexp.MustCompile(`Persistent:\s+yes`).MatchString(info) || !strings.Contains(info, "virbr0") {
			t.Fatalf("net-info default:\n%s", info)
		}
		n := networkReport(t, h.check(t), "default")
		if n.Forward != "nat" || n.Subnet != "192.168.122.0/24" || !n.DHCP || !n.Active || !n.Autostart {
			t.Fatalf("default network after the fix: %+v", n)
		}
		// Idempotent: a second run has nothing to do.
		if res, _, code := h.fix(t, false, diagnose.CodeNetworkMissing); code != ExitOK || len(res.Steps) != 0 {
			t.Fatalf("second fix: exit %d, %+v", code, res.Steps)
		}
	})

	t.Run("ip_forward off: dry run changes nothing, fix sets it and persists it in the private sysctl.d", func(t *testing.T) {
		h.lv.MustNsenter("sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
		if got := h.hostCodes(t); !slices.Contains(got, diagnose.CodeIPForwardOff) {
			t.Fatalf("codes %v lack ip_forward_off", got)
		}
		before := h.state(t)
		_, out, code := h.fix(t, true, diagnose.CodeIPForwardOff)
		if code != ExitOK || !strings.Contains(out, "net.ipv4.ip_forward") || !strings.Contains(out, hostnet.IPForwardFile) {
			t.Fatalf("dry run: exit %d\n%s", code, out)
		}
		if after := h.state(t); after != before {
			t.Fatalf("dry run changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		_, out, code = h.fix(t, false, diagnose.CodeIPForwardOff)
		if code != ExitOK {
			t.Fatalf("fix: exit %d\n%s", code, out)
		}
		if v := strings.TrimSpace(h.lv.MustNsenter("sysctl", "-n", "net.ipv4.ip_forward")); v != "1" {
			t.Fatalf("ip_forward = %s after the fix", v)
		}
		// Written inside the libvirtd's mount namespace (the private tmpfs), seen through
		// /proc/PID/root as hostEnv sees it, and not on the machine.
		body := h.lv.MustNsenter("cat", hostnet.IPForwardFile)
		if !strings.Contains(body, "managed by kvmnet") || !strings.Contains(body, "net.ipv4.ip_forward = 1") && !strings.Contains(body, "net.ipv4.ip_forward=1") {
			t.Fatalf("%s in the namespace:\n%s", hostnet.IPForwardFile, body)
		}
		if _, err := os.Stat(hostnet.IPForwardFile); err == nil {
			t.Fatalf("the fix wrote the machine's %s", hostnet.IPForwardFile)
		}
		if got := h.hostCodes(t); slices.Contains(got, diagnose.CodeIPForwardOff) {
			t.Fatalf("ip_forward_off still reported: %v", got)
		}
	})

	t.Run("Docker FORWARD DROP: fix adds DOCKER-USER accepts, Docker's policy stays DROP, verdict accept", func(t *testing.T) {
		h.toLibvirt10(t)
		rules, err := filepath.Abs("../../firewall/testdata/docker-forward-drop.rules")
		if err != nil {
			t.Fatal(err)
		}
		h.lv.MustNsenter("iptables-restore", rules)
		r := h.check(t)
		if got := diagnose.Codes(r.HostFindings()); !slices.Contains(got, diagnose.CodeForwardPolicyDrop) {
			t.Fatalf("codes %v lack forward_policy_drop", got)
		}
		if n := networkReport(t, r, "default"); n.Egress != "drop" {
			t.Fatalf("egress before the fix: %+v", n)
		}
		before := h.state(t)
		_, out, code := h.fix(t, true, diagnose.CodeForwardPolicyDrop)
		if code != ExitOK || !strings.Contains(out, "DOCKER-USER") {
			t.Fatalf("dry run: exit %d\n%s", code, out)
		}
		if after := h.state(t); after != before {
			t.Fatalf("dry run changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		_, out, code = h.fix(t, false, diagnose.CodeForwardPolicyDrop)
		if code != ExitOK {
			t.Fatalf("fix: exit %d\n%s", code, out)
		}
		save := h.lv.MustNsenter("iptables-save", "-t", "filter")
		if !strings.Contains(save, "-A DOCKER-USER -s 192.168.122.0/24 -i virbr0 -o up0 -j ACCEPT") || !strings.Contains(save, ":FORWARD DROP") {
			t.Fatalf("filter table after the fix:\n%s", save)
		}
		r = h.check(t)
		if n := networkReport(t, r, "default"); n.Egress != "accept" || !strings.Contains(n.EgressRule, "DOCKER-USER") {
			t.Fatalf("egress after the fix: %+v", n)
		}
		if got := diagnose.Codes(r.HostFindings()); slices.Contains(got, diagnose.CodeForwardPolicyDrop) {
			t.Fatalf("forward_policy_drop still reported: %v", got)
		}
	})

	t.Run("UFW routed deny: fix adds the route rule, UFW stays enabled, verdict accept", func(t *testing.T) {
		h.toLibvirt10(t)
		h.lv.MustNsenter("ufw", "--force", "enable")
		r := h.check(t)
		if got := diagnose.Codes(r.HostFindings()); !slices.Contains(got, diagnose.CodeUFWRoutedBlocked) {
			t.Fatalf("codes %v lack ufw_routed_blocked", got)
		}
		if n := networkReport(t, r, "default"); n.Egress != "drop" {
			t.Fatalf("egress before the fix: %+v", n)
		}
		before := h.state(t)
		_, out, code := h.fix(t, true, diagnose.CodeUFWRoutedBlocked)
		if code != ExitOK || !strings.Contains(out, "ufw route allow in on virbr0 out on up0") {
			t.Fatalf("dry run: exit %d\n%s", code, out)
		}
		if after := h.state(t); after != before {
			t.Fatalf("dry run changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		_, out, code = h.fix(t, false, diagnose.CodeUFWRoutedBlocked)
		if code != ExitOK {
			t.Fatalf("fix: exit %d\n%s", code, out)
		}
		status := h.lv.MustNsenter("ufw", "status", "verbose")
		if !strings.Contains(status, "Status: active") || !strings.Contains(status, "ALLOW FWD") {
			t.Fatalf("ufw status after the fix:\n%s", status)
		}
		userRules, err := os.ReadFile(filepath.Join(h.ufwRoot, "etc/ufw/user.rules"))
		if err != nil || !strings.Contains(string(userRules), "-A ufw-user-forward -i virbr0 -o up0 -j ACCEPT") {
			t.Fatalf("private user.rules: %v\n%s", err, userRules)
		}
		r = h.check(t)
		if n := networkReport(t, r, "default"); n.Egress != "accept" || !strings.Contains(n.EgressRule, "ufw-user-forward") {
			t.Fatalf("egress after the fix: %+v", n)
		}
		if got := diagnose.Codes(r.HostFindings()); slices.Contains(got, diagnose.CodeUFWRoutedBlocked) {
			t.Fatalf("ufw_routed_blocked still reported: %v", got)
		}
	})

	t.Run("bad --only is a usage error", func(t *testing.T) {
		before := h.state(t)
		_, out, code := h.fix(t, false, diagnose.CodeGuestNoIPv4)
		if code != ExitUsage || !strings.Contains(out, "not a host-fixable code") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if h.state(t) != before {
			t.Fatal("a rejected --only changed the host")
		}
	})
}
