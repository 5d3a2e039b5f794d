//go:build lab

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Finding is one diagnosis in kvmnetctl's JSON contract (issue 4).
type Finding struct {
	// Code is the stable finding code, e.g. "network_missing".
	Code string `json:"code"`
	// Severity is error, warning or info.
	Severity string `json:"severity"`
	// Subject is host, a network name, or guest/NIC.
	Subject string `json:"subject"`
	// Summary is the one-line human summary with evidence.
	Summary string `json:"summary"`
	// Fix is the kvmnetctl command or manual step that repairs it.
	Fix string `json:"fix"`
}

// NIC is one guest NIC row of the JSON contract.
type NIC struct {
	// MAC of the NIC as libvirt knows it.
	MAC string `json:"mac"`
	// Network is the libvirt network the NIC is on.
	Network string `json:"network"`
	// Bridge is the host bridge.
	Bridge string `json:"bridge"`
	// GuestIfname is the interface name inside the guest.
	GuestIfname string `json:"guest_ifname"`
	// GuestIPv4 lists the addresses the guest reports.
	GuestIPv4 []string `json:"guest_ipv4"`
	// LeaseIPv4 is the DHCP lease libvirt holds for the MAC.
	LeaseIPv4 string `json:"lease_ipv4"`
}

// Guest is one guest of the JSON contract.
type Guest struct {
	// Name of the domain.
	Name string `json:"name"`
	// State of the domain (running, shut off, ...).
	State string `json:"state"`
	// Healthy is false when the guest has an error-level finding.
	Healthy bool `json:"healthy"`
	// Agent says how the controller reaches the kvmnet agent.
	Agent struct {
		Transport string `json:"transport"`
		Reachable bool   `json:"reachable"`
	} `json:"agent"`
	// NICs of the guest.
	NICs []NIC `json:"nics"`
	// Findings about the guest.
	Findings []Finding `json:"findings"`
}

// Report is what `kvmnetctl guests status -o json` and `host check -o json` print.
type Report struct {
	// Host holds host-level findings.
	Host struct {
		Findings []Finding `json:"findings"`
	} `json:"host"`
	// Networks are libvirt's networks.
	Networks []map[string]any `json:"networks"`
	// Guests are the guests (status only).
	Guests []Guest `json:"guests"`
}

// Codes returns every finding code in the report (host and guests), with severity, e.g.
// "error:network_missing@host".
func (r Report) Codes() []string {
	var out []string
	for _, f := range r.Host.Findings {
		out = append(out, f.Severity+":"+f.Code+"@"+f.Subject)
	}
	for _, g := range r.Guests {
		for _, f := range g.Findings {
			out = append(out, f.Severity+":"+f.Code+"@"+f.Subject)
		}
	}
	return out
}

// Has reports whether any finding (host or guest) carries code.
func (r Report) Has(code string) bool {
	for _, f := range r.Host.Findings {
		if f.Code == code {
			return true
		}
	}
	for _, g := range r.Guests {
		for _, f := range g.Findings {
			if f.Code == code {
				return true
			}
		}
	}
	return false
}

// Errors returns the error-level findings.
func (r Report) Errors() []Finding {
	var out []Finding
	for _, f := range r.Host.Findings {
		if f.Severity == "error" {
			out = append(out, f)
		}
	}
	for _, g := range r.Guests {
		for _, f := range g.Findings {
			if f.Severity == "error" {
				out = append(out, f)
			}
		}
	}
	return out
}

// Lab drives one lab (scripts/lab/*) from Go: its name selects the namespaces kvmnet-lab*.
type Lab struct {
	// Repo is the repository root (scripts/lab and bin/ live there).
	Repo string
	// Name is the lab's name (KVMNET_LAB_NAME), e.g. kvmnet-lab-e2e.
	Name string
	// Logf receives one line per command run.
	Logf func(format string, args ...any)
}

// Result is the outcome of one command.
type Result struct {
	// Argv is what ran.
	Argv []string
	// Stdout and Stderr as printed.
	Stdout, Stderr string
	// Code is the exit code (-1 when it did not run).
	Code int
	// Took is the wall time.
	Took time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%s: exit %d after %s\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Argv, " "), r.Code,
		r.Took.Round(time.Millisecond), tail(r.Stdout, 4000), tail(r.Stderr, 4000))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// Script runs scripts/lab/<name> ARGS with the lab's environment.
func (l *Lab) Script(ctx context.Context, name string, args ...string) Result {
	argv := append([]string{filepath.Join(l.Repo, "scripts", "lab", name)}, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = l.Repo
	cmd.Env = append(os.Environ(), "KVMNET_LAB_NAME="+l.Name)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	res := Result{Argv: argv, Stdout: so.String(), Stderr: se.String(), Took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	default:
		res.Code = -1
		res.Stderr += "\n" + err.Error()
	}
	if l.Logf != nil {
		l.Logf("%s %s -> exit %d (%s)", name, strings.Join(args, " "), res.Code, res.Took.Round(time.Millisecond))
	}
	return res
}

// Ctl runs bin/kvmnetctl ARGS on the lab host (scripts/lab/ctl).
func (l *Lab) Ctl(ctx context.Context, args ...string) Result { return l.Script(ctx, "ctl", args...) }

// report runs a kvmnetctl command with -o json and decodes its output. Exit codes 0 and 1 both carry a
// report (1 = error-level findings); 2 and others are failures.
func (l *Lab) report(ctx context.Context, args ...string) (Report, Result, error) {
	res := l.Ctl(ctx, append(args, "-o", "json")...)
	var rep Report
	if res.Code != 0 && res.Code != 1 {
		return rep, res, fmt.Errorf("kvmnetctl %s failed:\n%s", strings.Join(args, " "), res)
	}
	if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil {
		return rep, res, fmt.Errorf("kvmnetctl %s: output is not the JSON contract: %v\n%s", strings.Join(args, " "), err, res)
	}
	return rep, res, nil
}

// Status is `kvmnetctl guests status -o json [VM...]`.
func (l *Lab) Status(ctx context.Context, vms ...string) (Report, Result, error) {
	return l.report(ctx, append([]string{"guests", "status"}, vms...)...)
}

// HostCheck is `kvmnetctl host check -o json`.
func (l *Lab) HostCheck(ctx context.Context) (Report, Result, error) {
	return l.report(ctx, "host", "check")
}

// Exec runs argv in a guest through qemu-guest-agent (not kvmnet's agent).
func (l *Lab) Exec(ctx context.Context, vm string, argv ...string) Result {
	return l.Script(ctx, "vm", append([]string{"exec", vm}, argv...)...)
}

// GuestEgress is the guest's own check: DNS through libvirt's dnsmasq and HTTP to the stand-in
// internet (deb.debian.org resolves to it), run inside the guest through qemu-guest-agent.
func (l *Lab) GuestEgress(ctx context.Context, vm string) error {
	res := l.Exec(ctx, vm, "curl", "-sS", "-4", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10", "http://deb.debian.org/debian/dists/bookworm/Release")
	if res.Code != 0 || strings.TrimSpace(res.Stdout) != "200" {
		return fmt.Errorf("guest %s cannot fetch from the stand-in mirror:\n%s", vm, res)
	}
	return nil
}

// Poll calls cond every interval until it returns nil or timeout passes; it returns cond's last error.
func Poll(ctx context.Context, timeout, interval time.Duration, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-time.After(interval):
		}
	}
}
