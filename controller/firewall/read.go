package firewall

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/kvmnet/kvmnet/controller/runner"
)

// Options configure a Reader.
type Options struct {
	// Files is the root file system of the host whose firewall is read: /etc/default/ufw,
	// /run/firewalld.pid, /proc/<pid>/comm, firewalld zone files. Default os.DirFS("/").
	Files fs.FS
}

// Reader reads a host's firewall through a runner.Runner (so the same code reads the host or a
// namespace) and its files through an fs.FS.
type Reader struct {
	run   runner.Runner
	files fs.FS
}

// NewReader returns a Reader that runs iptables-save and nft through r.
func NewReader(r runner.Runner, opts Options) *Reader {
	if opts.Files == nil {
		opts.Files = os.DirFS("/")
	}
	return &Reader{run: r, files: opts.Files}
}

// Read reads every backend. It fails only when no backend at all could be read (not root, no
// tools); partial failures are listed in State.Errors.
func (rd *Reader) Read(ctx context.Context) (*State, error) {
	st := &State{}
	var failures []string
	note := func(k, v string) { st.Evidence = append(st.Evidence, k+"="+v) }

	// iptables-nft: prefer the explicit name, fall back to iptables-save and its header.
	nftOut, err := rd.run.Run(ctx, "iptables-nft-save")
	if runner.IsNotFound(err) {
		nftOut, err = rd.run.Run(ctx, "iptables-save")
		if err == nil && strings.Contains(string(nftOut), "(legacy)") {
			// iptables-save is the legacy one; it is read below as legacy.
			nftOut, err = nil, fmt.Errorf("iptables-save is iptables-legacy: %w", errNoNFT)
		}
	}
	switch {
	case err == nil:
		ipt, perr := ParseIptablesSave(string(nftOut), "nft")
		if perr != nil {
			st.Errors = append(st.Errors, perr.Error())
			failures = append(failures, "iptables-nft")
			note("iptables_nft", "unparsable")
		} else {
			st.IPTablesNFT = ipt
			note("iptables_nft", fmt.Sprintf("tables:%d", len(ipt.Tables)))
		}
	case runner.IsNotFound(err) || isNoNFT(err):
		note("iptables_nft", "not-installed")
	default:
		st.Errors = append(st.Errors, err.Error())
		failures = append(failures, "iptables-nft")
		note("iptables_nft", "error")
	}

	legOut, err := rd.run.Run(ctx, "iptables-legacy-save")
	switch {
	case err == nil:
		ipt, perr := ParseIptablesSave(string(legOut), "legacy")
		switch {
		case perr != nil:
			st.Errors = append(st.Errors, perr.Error())
			note("iptables_legacy", "unparsable")
		case ipt.Empty():
			note("iptables_legacy", "empty")
		default:
			st.IPTablesLegacy = ipt
			note("iptables_legacy", fmt.Sprintf("tables:%d", len(ipt.Tables)))
		}
	case runner.IsNotFound(err):
		note("iptables_legacy", "not-installed")
	default:
		st.Errors = append(st.Errors, err.Error())
		note("iptables_legacy", "error")
	}

	jsonOut, err := rd.run.Run(ctx, "nft", "-j", "list", "ruleset")
	switch {
	case err == nil:
		nt, perr := ParseNftJSON(jsonOut)
		if perr != nil {
			st.Errors = append(st.Errors, perr.Error())
			failures = append(failures, "nft")
			note("nft", "unparsable")
		} else {
			st.NFTables = nt
			st.reconcile()
			var native []string
			for _, t := range nt.Tables {
				if t.ManagedBy == "" {
					native = append(native, t.Family+":"+t.Name)
				}
			}
			note("nft", fmt.Sprintf("tables:%d", len(nt.Tables)))
			if len(native) > 0 {
				note("nft_native", strings.Join(native, ","))
			}
		}
	case runner.IsNotFound(err):
		note("nft", "not-installed")
	default:
		st.Errors = append(st.Errors, err.Error())
		failures = append(failures, "nft")
		note("nft", "error")
	}
	if st.IPTablesNFT == nil && st.IPTablesLegacy == nil && st.NFTables == nil && len(failures) > 0 {
		return st, fmt.Errorf("read firewall rules: %s (run as root; needs iptables and nftables)",
			strings.Join(st.Errors, "; "))
	}

	rd.readUFW(st)
	rd.readFirewalld(st)
	return st, nil
}

var errNoNFT = fmt.Errorf("no iptables-nft")

func isNoNFT(err error) bool { return err != nil && strings.Contains(err.Error(), errNoNFT.Error()) }

// ParseShellVars parses KEY=value / KEY="value" lines (comments and anything else ignored), as in
// /etc/default/ufw.
func ParseShellVars(text string) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(k, " \t") {
			continue
		}
		vars[k] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return vars
}

func (rd *Reader) readUFW(st *State) {
	b, err := fs.ReadFile(rd.files, "etc/default/ufw")
	if err != nil {
		st.Evidence = append(st.Evidence, "ufw_defaults=absent")
		return
	}
	st.UFWDefaults = ParseShellVars(string(b))
	st.Evidence = append(st.Evidence, "ufw_default_forward="+strings.ToLower(st.UFWDefaults["DEFAULT_FORWARD_POLICY"]))
}

// readFirewalld takes firewalld's state from its files (permanent configuration) and its nftables
// table (runtime), never from firewall-cmd or D-Bus: either would talk to the machine's system bus.
// firewalld runs when its table exists in the namespace read or its pid file names a live process
// (the iptables backend has no table of its own).
func (rd *Reader) readFirewalld(st *State) {
	note := func(k, v string) { st.Evidence = append(st.Evidence, k+"="+v) }
	cfg, errs := ReadFirewalldConfig(rd.files)
	st.Errors = append(st.Errors, errs...)
	rt := FirewalldRuntimeOf(st.NFTables)
	pid := rd.pidAlive("run/firewalld.pid", "firewalld")
	st.FirewalldRunning = rt != nil || pid
	switch {
	case rt != nil:
		note("firewalld", "running")
		note("firewalld_table", "inet:firewalld")
	case pid:
		note("firewalld", "running")
		note("firewalld_pid", "true")
	default:
		note("firewalld", "not-running")
	}
	if cfg == nil {
		note("firewalld_config", "absent")
		if rt != nil {
			// Running with its configuration out of sight: judge from the table alone.
			cfg = &FirewalldConfig{}
		}
	} else {
		note("firewalld_config", fmt.Sprintf("zones:%d,policies:%d", len(cfg.Zones), len(cfg.Policies)))
		note("firewalld_default_zone", cfg.DefaultZone)
	}
	if cfg != nil {
		cfg.Runtime = rt
	}
	st.Firewalld = cfg
	if z, ok := cfg.Zone("libvirt"); ok {
		st.FirewalldLibvirtZone = true
		note("firewalld_libvirt_zone", z.File)
	} else if rt != nil && slices.Contains(rt.Zones, "libvirt") {
		st.FirewalldLibvirtZone = true
		note("firewalld_libvirt_zone", "runtime")
	}
}

func (rd *Reader) pidAlive(pidFile, comm string) bool {
	b, err := fs.ReadFile(rd.files, pidFile)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	c, err := fs.ReadFile(rd.files, path.Join("proc", strconv.Itoa(pid), "comm"))
	return err == nil && strings.TrimSpace(string(c)) == comm
}
