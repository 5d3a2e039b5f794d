package install

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// DefaultPackageDir is where the kvmnetctl packages ship the agent packages.
const DefaultPackageDir = "/usr/share/kvmnet/agent"

// Family is a package format.
type Family string

// Families.
const (
	FamilyDeb Family = "deb"
	FamilyRPM Family = "rpm"
)

// Target is what the guest needs: its package format and architecture (Debian names: amd64, arm64).
type Target struct {
	// Family: deb or rpm.
	Family Family `json:"family"`
	// Arch: amd64 or arm64.
	Arch string `json:"arch"`
}

func (t Target) String() string { return string(t.Family) + "/" + t.Arch }

// debIDs and rpmIDs map os-release IDs onto package formats.
var (
	debIDs = []string{"debian", "ubuntu", "linuxmint", "pop", "kali", "raspbian", "devuan", "elementary", "zorin", "neon"}
	rpmIDs = []string{"rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn", "opensuse", "opensuse-leap",
		"opensuse-tumbleweed", "sles", "sled", "mageia", "openeuler", "circle", "eurolinux", "navylinux", "virtuozzo"}
)

// ErrUnsupported is wrapped by TargetFor for an OS or architecture kvmnet ships no agent for.
var ErrUnsupported = errors.New("unsupported guest")

// TargetFor maps guest-get-osinfo's ID and machine onto a Target.
func TargetFor(id, machine string) (Target, error) {
	var t Target
	switch id = strings.ToLower(id); {
	case slices.Contains(debIDs, id):
		t.Family = FamilyDeb
	case slices.Contains(rpmIDs, id):
		t.Family = FamilyRPM
	default:
		return t, fmt.Errorf("%w: OS id %q is neither a Debian-family (dpkg) nor an RPM-family distribution; "+
			"kvmnet ships .deb and .rpm agents only: install kvmnet-agent by hand (static binary, see packaging/README.md)", ErrUnsupported, id)
	}
	switch machine {
	case "x86_64", "amd64":
		t.Arch = "amd64"
	case "aarch64", "arm64":
		t.Arch = "arm64"
	default:
		return t, fmt.Errorf("%w: architecture %q: kvmnet ships agents for x86_64 (amd64) and aarch64 (arm64) only", ErrUnsupported, machine)
	}
	return t, nil
}

// rpmArch is the RPM name of a Debian architecture.
func rpmArch(a string) string {
	switch a {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return a
}

// Package is one agent package file on the host.
type Package struct {
	// Path on the host.
	Path string `json:"path"`
	// Target it is built for (from its file name; verified in the guest before installing).
	Target Target `json:"target"`
	// Version from its file name ("" when the name does not follow packaging/build.sh).
	Version string `json:"version,omitempty"`
	// Size in bytes.
	Size int64 `json:"size"`
	// SHA256 of its content, hex.
	SHA256 string `json:"sha256"`
}

// packaging/build.sh names: kvmnet-agent_<ver>_<arch>.deb, kvmnet-agent-<ver>.<rpmarch>.rpm.
var (
	debName = regexp.MustCompile(`^kvmnet-agent_([^_]+)_([a-z0-9]+)\.deb$`)
	rpmName = regexp.MustCompile(`^kvmnet-agent-(.+)\.([a-z0-9_]+)\.rpm$`)
)

// ParseName reads the target and version from a package file name; ok is false when the name does not
// follow packaging/build.sh's scheme (the format then comes from the extension alone).
func ParseName(name string) (t Target, version string, ok bool) {
	base := filepath.Base(name)
	if m := debName.FindStringSubmatch(base); m != nil {
		return Target{Family: FamilyDeb, Arch: m[2]}, m[1], true
	}
	if m := rpmName.FindStringSubmatch(base); m != nil {
		arch := m[2]
		switch arch {
		case "x86_64":
			arch = "amd64"
		case "aarch64":
			arch = "arm64"
		}
		return Target{Family: FamilyRPM, Arch: arch}, m[1], true
	}
	switch {
	case strings.HasSuffix(base, ".deb"):
		return Target{Family: FamilyDeb}, "", false
	case strings.HasSuffix(base, ".rpm"):
		return Target{Family: FamilyRPM}, "", false
	}
	return Target{}, "", false
}

// Choose returns the package for want: the file given (--package; its name must not contradict
// want), or the one in dir that matches it.
func Choose(want Target, file, dir string) (Package, error) {
	if file != "" {
		t, ver, ok := ParseName(file)
		if t.Family == "" {
			return Package{}, fmt.Errorf("--package %s: not a .deb or .rpm file", file)
		}
		if t.Family != want.Family {
			return Package{}, fmt.Errorf("--package %s is a .%s package but the guest installs %s packages: pass kvmnet-agent's .%s for %s",
				file, t.Family, want.Family, want.Family, want.Arch)
		}
		if ok && t.Arch != want.Arch {
			return Package{}, fmt.Errorf("--package %s is built for %s but the guest is %s: pass the %s package (%s)",
				file, t.Arch, want.Arch, want.Arch, exampleName(want))
		}
		t.Arch = want.Arch // checked again in the guest (dpkg-deb / rpm -qp) before installing
		return describe(file, t, ver)
	}
	if dir == "" {
		dir = DefaultPackageDir
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Package{}, fmt.Errorf("agent packages: %w (install the kvmnetctl package, which ships them in %s, or pass --package FILE)", err, DefaultPackageDir)
	}
	var found []string
	for _, e := range entries {
		t, _, ok := ParseName(e.Name())
		if ok && t == want {
			found = append(found, e.Name())
		}
	}
	if len(found) == 0 {
		return Package{}, fmt.Errorf("no kvmnet-agent package for %s in %s (expected %s): pass --package FILE", want, dir, exampleName(want))
	}
	slices.Sort(found) // one per target is shipped; with several, the last name sorts newest for same-length versions
	name := found[len(found)-1]
	t, ver, _ := ParseName(name)
	return describe(filepath.Join(dir, name), t, ver)
}

func exampleName(t Target) string {
	if t.Family == FamilyDeb {
		return "kvmnet-agent_VERSION_" + t.Arch + ".deb"
	}
	return "kvmnet-agent-VERSION." + rpmArch(t.Arch) + ".rpm"
}

func describe(path string, t Target, ver string) (Package, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Package{}, fmt.Errorf("read agent package: %w", err)
	}
	if len(b) == 0 {
		return Package{}, fmt.Errorf("agent package %s is empty", path)
	}
	sum := sha256.Sum256(b)
	return Package{Path: path, Target: t, Version: ver, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}, nil
}
