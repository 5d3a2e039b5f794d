package pkgconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/kvmnet/kvmnet/agent/managedfile"
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

// RenderApt returns the body of AptFile (agent/managedfile adds the managed header; apt reads "#" lines
// as comments).
func RenderApt() []byte {
	return []byte(`// Written by kvmnet (Apply set_package_manager_ipv4 force=true): download packages over IPv4
// only, because IPv6 in NATed guests often routes nowhere and apt would hang on it first.
Acquire::ForceIPv4 "true";
`)
}

// Manager reads the apt and dnf IPv4 settings under one root. The changes are agent/apply's (it
// renders them with RenderApt and RenderDnf and writes them through agent/managedfile).
type Manager struct {
	root  string
	files *managedfile.Store // read only: whether kvmnet manages dnf.conf
}

// New returns a Manager reading under root, and kvmnet's records of its files in store (whose root
// should be the same).
func New(root string, store *managedfile.Store) (*Manager, error) {
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
			st.ownFile, st.ownHeader = true, managedfile.HasHeader(b)
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
	case d.v4 && d.managed && managedfile.HasHeader(d.content):
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
