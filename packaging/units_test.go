package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest `systemd-analyze security` exposure the exporter units may score
// (measured 2.7 with systemd 252: root with three capabilities and the host's network).
const maxExposure = 3.0

// The exporter units parse, run sandboxed with nothing writable (the textfile unit: only its
// directory), keep only the capabilities they use, and score at most maxExposure.
func TestExporterUnits(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found (Debian package systemd): it checks the packaged units")
	}
	dir := filepath.Join("kvmnetctl", "systemd")
	for _, name := range []string{"kvmnetctl-exporter.service", "kvmnetctl-exporter.socket", "kvmnetctl-textfile.service", "kvmnetctl-textfile.timer"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := exec.Command(sa, "verify", "--man=no", path).CombinedOutput()
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				// Checks that need the installed system (the binary, libvirtd) are not the unit's fault.
				if l == "" || strings.Contains(l, "/usr/bin/kvmnetctl is not executable") || strings.Contains(l, "libvirtd.service") {
					continue
				}
				t.Errorf("systemd-analyze verify %s: %s", name, l)
			}
			if !strings.HasSuffix(name, ".service") {
				return
			}
			unit := string(b)
			for _, want := range []string{"ProtectSystem=strict", "NoNewPrivileges=yes",
				"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_DAC_OVERRIDE", "ExecStart=/usr/bin/kvmnetctl exporter"} {
				if !strings.Contains(unit, "\n"+want+"\n") && !strings.Contains(unit, "\n"+want) {
					t.Errorf("%s lacks %s", name, want)
				}
			}
			rw := regexp.MustCompile(`(?m)^ReadWritePaths=(.*)$`).FindAllStringSubmatch(unit, -1)
			switch name {
			case "kvmnetctl-exporter.service":
				if len(rw) != 0 {
					t.Errorf("exporter unit has write paths %v, want none", rw)
				}
			case "kvmnetctl-textfile.service":
				if len(rw) != 1 || rw[0][1] != "/var/lib/prometheus/node-exporter" {
					t.Errorf("textfile unit write paths %v, want only its textfile directory", rw)
				}
			}
			out, err = exec.Command(sa, "security", "--offline=yes", path).CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze security: %v\n%s", err, out)
			}
			m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("no exposure level in:\n%s", out)
			}
			score, _ := strconv.ParseFloat(m[1], 64)
			t.Logf("%s: systemd-analyze security exposure %.1f", name, score)
			if score > maxExposure {
				t.Errorf("%s exposure %.1f > %.1f", name, score, maxExposure)
			}
		})
	}
}
