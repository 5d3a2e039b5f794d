package firewall

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
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

// NewReader returns a Reader that runs iptables-save, nft and firewall-cmd through r.
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
	rd.readFirewalld(ctx, st)
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

func (rd *Reader) readFirewalld(ctx context.Context, st *State) {
	out, err := rd.run.Run(ctx, "firewall-cmd", "--state")
	switch {
	case err == nil && strings.TrimSpace(string(out)) == "running":
		st.FirewalldRunning = true
		st.Evidence = append(st.Evidence, "firewalld=running")
	case runner.IsNotFound(err):
		// No client: look for the daemon's pid file.
		st.FirewalldRunning = rd.pidAlive("run/firewalld.pid", "firewalld")
		st.Evidence = append(st.Evidence, "firewall_cmd=not-installed", "firewalld_pid="+strconv.FormatBool(st.FirewalldRunning))
	default:
		// firewall-cmd --state exits 252 "not running".
		st.Evidence = append(st.Evidence, "firewalld=not-running")
	}
	for _, p := range []string{"etc/firewalld/zones/libvirt.xml", "usr/lib/firewalld/zones/libvirt.xml"} {
		if _, err := fs.Stat(rd.files, p); err == nil {
			st.FirewalldLibvirtZone = true
			st.Evidence = append(st.Evidence, "firewalld_libvirt_zone=/"+p)
			break
		}
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
