package pkgconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/kvmnet/kvmnet/agent/files"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// AptFile is kvmnet's apt configuration snippet.
const AptFile = "/etc/apt/apt.conf.d/99kvmnet-force-ipv4"

// DnfConf is dnf's main configuration file; kvmnet sets ip_resolve=4 in its [main] section.
const DnfConf = "/etc/dnf/dnf.conf"

const (
	aptPartsDir = "etc/apt/apt.conf.d"
	aptMainFile = "etc/apt/apt.conf"
	aptKey      = "acquire::forceipv4"
)

// RenderApt returns the body of AptFile (agent/files adds the managed header; apt reads "#" lines
// as comments).
func RenderApt() []byte {
	return []byte(`// Written by kvmnet (Apply set_package_manager_ipv4 force=true): download packages over IPv4
// only, because IPv6 in NATed guests often routes nowhere and apt would hang on it first.
Acquire::ForceIPv4 "true";
`)
}

// Manager reads and changes the apt and dnf IPv4 settings under one root.
type Manager struct {
	root  string
	files *files.Store
}

// New returns a Manager reading under root and writing through store (whose root should be the
// same).
func New(root string, store *files.Store) (*Manager, error) {
	if root == "" || store == nil {
		return nil, errors.New("pkgconf: a root directory and a file store are required")
	}
	return &Manager{root: root, files: store}, nil
}

func (m *Manager) exists(rel string) bool {
	_, err := os.Stat(filepath.Join(m.root, rel))
	return err == nil
}

// aptState is the effective Acquire::ForceIPv4 with the file that set it last.
type aptState struct {
	installed bool
	set       bool // some file assigns it (and no later #clear)
	value     bool
	source    string // guest path
	ownFile   bool   // AptFile exists
	ownHeader bool   // AptFile carries kvmnet's header
	parseErrs []error
}

// aptFileAllowed follows apt's rules for apt.conf.d: names of [A-Za-z0-9_.-] only, no extension or
// ".conf"; backup and package-manager leftovers are ignored.
var aptFileName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

func aptFileAllowed(name string) bool {
	if !aptFileName.MatchString(name) {
		return false
	}
	ext := filepath.Ext(name)
	return ext == "" || ext == ".conf"
}

func (m *Manager) readApt() aptState {
	st := aptState{installed: m.exists("usr/bin/apt-get") || m.exists("etc/apt")}
	if !st.installed {
		return st
	}
	var paths []string
	entries, _ := os.ReadDir(filepath.Join(m.root, aptPartsDir))
	for _, e := range entries {
		if !e.IsDir() && aptFileAllowed(e.Name()) {
			paths = append(paths, aptPartsDir+"/"+e.Name())
		}
	}
	slices.Sort(paths)
	paths = append(paths, aptMainFile)
	for _, rel := range paths {
		b, err := os.ReadFile(filepath.Join(m.root, rel))
		if err != nil {
			continue
		}
		guest := "/" + rel
		settings, err := parseApt(string(b))
		if err != nil {
			st.parseErrs = append(st.parseErrs, fmt.Errorf("parse %s: %w", guest, err))
		}
		if guest == AptFile {
			st.ownFile, st.ownHeader = true, files.HasHeader(b)
		}
		for _, s := range settings {
			switch {
			case s.Clear && (s.Key == aptKey || strings.HasPrefix(aptKey, s.Key+"::")):
				st.set, st.value, st.source = false, false, ""
			case !s.Clear && s.Key == aptKey:
				v, ok := aptBool(s.Value)
				st.set, st.value, st.source = true, v && ok, guest
			}
		}
	}
	return st
}

func (a aptState) state() kvmnetv1.ConfigFileState {
	switch {
	case !a.installed:
		return kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_NOT_INSTALLED
	case a.set && a.value && a.source == AptFile && a.ownHeader:
		return kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_KVMNET
	case a.set && (a.source != AptFile || a.value):
		// Forced by someone else (a file without kvmnet's header counts as someone else's, even
		// under kvmnet's name), or switched off by a file read after kvmnet's.
		return kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_OTHER
	default:
		return kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_ABSENT
	}
}

// dnfState is dnf's ip_resolve in [main].
type dnfState struct {
	installed bool
	exists    bool
	content   []byte
	v4        bool
	managed   bool
}

func (m *Manager) readDnf() (dnfState, error) {
	st := dnfState{installed: m.exists("etc/dnf") || m.exists("usr/bin/dnf")}
	if !st.installed {
		return st, nil
	}
	b, err := os.ReadFile(filepath.Join(m.root, DnfConf))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read %s: %w", DnfConf, err)
	}
	st.exists, st.content = true, b
	v, _ := dnfIPResolve(b)
	st.v4 = v == "4" || strings.EqualFold(v, "ipv4")
	_, st.managed, err = m.files.Entry(DnfConf)
	return st, err
}

func (d dnfState) state() kvmnetv1.ConfigFileState {
	switch {
	case !d.installed:
		return kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_NOT_INSTALLED
	case d.v4 && d.managed && files.HasHeader(d.content):
		return kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_KVMNET
	case d.v4:
		return kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_OTHER
	default:
		return kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_ABSENT
	}
}

// State reports apt's and dnf's IPv4-only settings. apt_source names the file whose
// Acquire::ForceIPv4 takes effect (the last one apt reads); it is also set when that file sets it
// to false (state OTHER when it is not kvmnet's file). Parse problems are returned as an error
// next to a usable state.
func (m *Manager) State() (*kvmnetv1.PackageManagerState, error) {
	apt := m.readApt()
	out := &kvmnetv1.PackageManagerState{AptForceIpv4: apt.state(), AptSource: apt.source}
	dnf, err := m.readDnf()
	errs := append(apt.parseErrs, err)
	out.DnfIpResolveV4 = dnf.state()
	if dnf.v4 {
		out.DnfSource = DnfConf
	}
	return out, errors.Join(errs...)
}

// Plan returns the changes Apply(force) would make, without making them.
func (m *Manager) Plan(force bool) ([]*kvmnetv1.Change, error) { return m.run(force, true) }

// Apply forces apt and dnf to IPv4 (force=true) or removes kvmnet's settings (force=false), and
// returns what changed. Package managers that are not installed, and settings someone else already
// made, are left alone (reported as "note" changes). A second Apply returns no file changes.
func (m *Manager) Apply(force bool) ([]*kvmnetv1.Change, error) { return m.run(force, false) }

func (m *Manager) run(force, dry bool) ([]*kvmnetv1.Change, error) {
	var out []*kvmnetv1.Change
	c, err := m.runApt(force, dry)
	if err != nil {
		return out, err
	}
	out = append(out, c...)
	c, err = m.runDnf(force, dry)
	out = append(out, c...)
	return out, err
}

func note(target, summary string) *kvmnetv1.Change {
	return &kvmnetv1.Change{Kind: "note", Target: target, Summary: summary}
}

func (m *Manager) runApt(force, dry bool) ([]*kvmnetv1.Change, error) {
	apt := m.readApt()
	if !apt.installed {
		return nil, nil
	}
	cur, err := m.files.Read(AptFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if force {
		if apt.set && apt.value && apt.source != AptFile && !apt.ownFile {
			return []*kvmnetv1.Change{note(apt.source, "apt is already forced to IPv4 by "+apt.source+"; nothing to do")}, nil
		}
		want := files.WithHeader(RenderApt())
		var out []*kvmnetv1.Change
		if !bytes.Equal(cur, want) {
			c := &kvmnetv1.Change{Kind: "file", Target: AptFile, Summary: "write " + AptFile + ` (Acquire::ForceIPv4 "true")`,
				Diff: files.LineDiff(string(cur), string(want))}
			if !dry {
				res, err := m.files.Write(AptFile, RenderApt(), 0o644)
				if err != nil {
					return nil, err
				}
				c.Diff = res.Diff()
			}
			out = append(out, c)
		}
		if apt.set && !apt.value && apt.source != AptFile {
			out = append(out, note(apt.source, apt.source+" sets Acquire::ForceIPv4 to false after kvmnet's file; apt will still use IPv6 until it is changed by hand"))
		}
		return out, nil
	}
	var out []*kvmnetv1.Change
	if cur != nil {
		if _, ok, err := m.files.Entry(AptFile); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("%s exists but kvmnet did not write it; remove it by hand if it should go", AptFile)
		}
		c := &kvmnetv1.Change{Kind: "file", Target: AptFile, Summary: "remove " + AptFile, Diff: files.LineDiff(string(cur), "")}
		if !dry {
			if _, err := m.files.Remove(AptFile); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	if apt.set && apt.value && apt.source != AptFile {
		out = append(out, note(apt.source, apt.source+" forces apt to IPv4 as well; kvmnet leaves it alone"))
	}
	return out, nil
}

func (m *Manager) runDnf(force, dry bool) ([]*kvmnetv1.Change, error) {
	dnf, err := m.readDnf()
	if err != nil || !dnf.installed {
		return nil, err
	}
	if force {
		if dnf.v4 {
			if dnf.state() == kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_OTHER {
				return []*kvmnetv1.Change{note(DnfConf, DnfConf+" already sets ip_resolve=4; nothing to do")}, nil
			}
			return nil, nil
		}
		body := RenderDnf(files.StripHeader(dnf.content), true)
		want := files.WithHeader(body)
		c := &kvmnetv1.Change{Kind: "file", Target: DnfConf, Summary: "set ip_resolve=4 in [main] of " + DnfConf + " (original backed up)",
			Diff: files.LineDiff(string(dnf.content), string(want))}
		if !dry {
			res, err := m.files.Write(DnfConf, body, 0)
			if err != nil {
				return nil, err
			}
			c.Diff = res.Diff()
		}
		return []*kvmnetv1.Change{c}, nil
	}
	if !dnf.managed {
		if dnf.v4 {
			return []*kvmnetv1.Change{note(DnfConf, DnfConf+" sets ip_resolve=4 itself; kvmnet leaves it alone")}, nil
		}
		return nil, nil
	}
	e, _, err := m.files.Entry(DnfConf)
	if err != nil {
		return nil, err
	}
	var orig []byte
	if e.Existed {
		if orig, err = os.ReadFile(filepath.Join(m.files.Root(), e.Backup)); err != nil {
			return nil, fmt.Errorf("read backup of %s: %w", DnfConf, err)
		}
	}
	c := &kvmnetv1.Change{Kind: "file", Target: DnfConf, Summary: "restore " + DnfConf + " from kvmnet's backup",
		Diff: files.LineDiff(string(dnf.content), string(orig))}
	if !e.Existed {
		c.Summary = "remove " + DnfConf + " (kvmnet created it)"
	}
	if !dry {
		if e.Existed {
			_, err = m.files.Restore(DnfConf)
		} else {
			_, err = m.files.Remove(DnfConf)
		}
		if err != nil {
			return nil, err
		}
	}
	return []*kvmnetv1.Change{c}, nil
}
