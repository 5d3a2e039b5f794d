package channel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kvmnet/kvmnet/controller/atomicfile"
	"github.com/kvmnet/kvmnet/controller/sockaccess"
)

// DefaultTmpfiles is the tmpfiles.d file kvmnetctl writes so the channel directory keeps its owner and
// mode across reboots. It overrides the packaged /usr/lib/tmpfiles.d/kvmnet.conf.
const DefaultTmpfiles = "/etc/tmpfiles.d/kvmnet.conf"

// ManagedHeader marks files kvmnet writes (the package's postrm removes only such files).
const ManagedHeader = "# managed by kvmnet (kvmnetctl guests enable-channel); edits are overwritten"

// DirOptions configure PrepareDir.
type DirOptions struct {
	// Dir is the channel directory. Default DefaultDir.
	Dir string
	// QEMU is the user and group QEMU runs as (sockaccess.QEMUUser).
	QEMU sockaccess.QEMUIdentity
	// Accounts resolve names for the traversal check.
	Accounts sockaccess.Accounts
	// Tmpfiles is the tmpfiles.d file to write. Default DefaultTmpfiles; "-" writes none.
	Tmpfiles string
}

// DirResult says what PrepareDir found and did.
type DirResult struct {
	// Dir is the channel directory.
	Dir string `json:"dir"`
	// Owner and group it has now.
	Owner string `json:"owner"`
	// Group it has now.
	Group string `json:"group"`
	// Actions taken: "created", "chown", "chmod", "tmpfiles"; empty when all was in place.
	Actions []string `json:"actions,omitempty"`
	// Tmpfiles is the tmpfiles.d file written or checked ("" when skipped).
	Tmpfiles string `json:"tmpfiles,omitempty"`
	// Evidence, key=value words.
	Evidence string `json:"evidence"`
}

// PrepareDir makes the channel directory exist as mode 0700, owned by QEMU's user (so QEMU can create
// the sockets there and nobody else can reach them), checks QEMU's user can traverse its parents, and
// writes the tmpfiles.d entry that keeps it so across reboots. It refuses a symlink at Dir. Idempotent.
func PrepareDir(o DirOptions) (DirResult, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Tmpfiles == "" {
		o.Tmpfiles = DefaultTmpfiles
	}
	if !filepath.IsAbs(o.Dir) {
		return DirResult{}, fmt.Errorf("channel directory %q must be an absolute path", o.Dir)
	}
	if o.QEMU.User == "" {
		return DirResult{}, errors.New("channel directory: QEMU's user is unknown")
	}
	res := DirResult{Dir: o.Dir, Owner: o.QEMU.User, Group: o.QEMU.Group}
	ev := []string{"dir=" + o.Dir, "qemu_user=" + o.QEMU.User, "qemu_group=" + o.QEMU.Group, "qemu_source=" + o.QEMU.Source}
	if err := os.MkdirAll(filepath.Dir(o.Dir), 0o755); err != nil {
		return res, fmt.Errorf("channel directory %s: create parent: %w", o.Dir, err)
	}
	fi, err := os.Lstat(o.Dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(o.Dir, 0o700); err != nil {
			return res, fmt.Errorf("channel directory %s: %w", o.Dir, err)
		}
		res.Actions = append(res.Actions, "created")
		fi, err = os.Lstat(o.Dir)
		if err != nil {
			return res, fmt.Errorf("channel directory %s: %w", o.Dir, err)
		}
	case err != nil:
		return res, fmt.Errorf("channel directory %s: %w", o.Dir, err)
	case fi.Mode()&os.ModeSymlink != 0:
		return res, fmt.Errorf("channel directory %s is a symlink; refusing to chown through it: replace it "+
			"with a real directory", o.Dir)
	case !fi.IsDir():
		return res, fmt.Errorf("channel directory %s exists and is not a directory", o.Dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return res, fmt.Errorf("channel directory %s: no owner information", o.Dir)
	}
	if st.Uid != o.QEMU.UID || st.Gid != o.QEMU.GID {
		if err := os.Lchown(o.Dir, int(o.QEMU.UID), int(o.QEMU.GID)); err != nil {
			return res, fmt.Errorf("channel directory %s: chown %s:%s: %w", o.Dir, o.QEMU.User, o.QEMU.Group, err)
		}
		res.Actions = append(res.Actions, "chown")
		ev = append(ev, fmt.Sprintf("was_owner=%d:%d", st.Uid, st.Gid))
	}
	if fi.Mode().Perm() != 0o700 || fi.Mode()&(os.ModeSetgid|os.ModeSetuid|os.ModeSticky) != 0 {
		if err := os.Chmod(o.Dir, 0o700); err != nil {
			return res, fmt.Errorf("channel directory %s: chmod 0700: %w", o.Dir, err)
		}
		res.Actions = append(res.Actions, "chmod")
		ev = append(ev, "was_mode="+sockaccess.FormatMode(fi.Mode()))
	}
	chain, err := sockaccess.Inspector{}.Chain(o.Dir)
	if err != nil {
		return res, err
	}
	if ok, blocker := sockaccess.CanSearch(chain, o.Accounts, o.QEMU.User); !ok && o.QEMU.UID != 0 {
		return res, fmt.Errorf("channel directory %s: QEMU's user %s cannot reach it (blocked at %s): "+
			"give the parent directories search permission (chmod o+x) or choose another --dir",
			o.Dir, o.QEMU.User, blocker)
	}
	if o.Tmpfiles != "-" {
		res.Tmpfiles = o.Tmpfiles
		changed, err := writeTmpfiles(o.Tmpfiles, o.Dir, o.QEMU)
		if err != nil {
			return res, err
		}
		if changed {
			res.Actions = append(res.Actions, "tmpfiles")
		}
	}
	ev = append(ev, "actions="+orNone(strings.Join(res.Actions, ",")))
	res.Evidence = strings.Join(ev, " ")
	return res, nil
}

// TmpfilesContent is the tmpfiles.d entry for the channel directory owned by id.
func TmpfilesContent(dir string, id sockaccess.QEMUIdentity) string {
	user, group := id.User, id.Group
	if strings.HasPrefix(user, "uid:") {
		user = strconv.FormatUint(uint64(id.UID), 10)
	}
	if strings.HasPrefix(group, "gid:") || group == "" {
		group = strconv.FormatUint(uint64(id.GID), 10)
	}
	return ManagedHeader + "\n" +
		"# The host end of each guest's kvmnet channel: only QEMU's user (" + id.User + ", read from " + id.Source + ")\n" +
		"# may traverse it, so no other host user can speak to a guest agent.\n" +
		"d " + dir + " 0700 " + user + " " + group + " -\n"
}

func writeTmpfiles(path, dir string, id sockaccess.QEMUIdentity) (bool, error) {
	want := TmpfilesContent(dir, id)
	old, err := os.ReadFile(path)
	switch {
	case err == nil && string(old) == want:
		return false, nil
	case err == nil && !strings.HasPrefix(string(old), "# managed by kvmnet"):
		return false, fmt.Errorf("%s exists and was not written by kvmnet; add `d %s 0700 %s %s -` to it "+
			"yourself (or remove it) and run again", path, dir, id.User, id.Group)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("tmpfiles.d entry: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("tmpfiles.d entry: %w", err)
	}
	if err := atomicfile.Write(path, []byte(want), 0o644); err != nil {
		return false, fmt.Errorf("tmpfiles.d entry: %w", err)
	}
	return true, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// LocalOptions configure LocalPreparer.
type LocalOptions struct {
	// QEMUConf is libvirt's qemu.conf. Default /etc/libvirt/qemu.conf.
	QEMUConf string
	// AccountsDir holds passwd and group. Default /etc.
	AccountsDir string
	// Tmpfiles as in DirOptions.
	Tmpfiles string
}

// LocalPreparer returns the PrepareFunc for a libvirt on this host: it finds QEMU's user
// (sockaccess.QEMUUser) and runs PrepareDir with it.
func LocalPreparer(o LocalOptions) PrepareFunc {
	return func(dir string) (DirResult, error) {
		if o.AccountsDir == "" {
			o.AccountsDir = "/etc"
		}
		acc, err := sockaccess.ReadAccounts(o.AccountsDir)
		if err != nil {
			return DirResult{}, fmt.Errorf("channel directory: %w", err)
		}
		id, err := sockaccess.QEMUUser(sockaccess.QEMUSources{QEMUConf: o.QEMUConf, Accounts: acc})
		if err != nil {
			return DirResult{}, fmt.Errorf("channel directory: %w", err)
		}
		res, err := PrepareDir(DirOptions{Dir: dir, QEMU: id, Accounts: acc, Tmpfiles: o.Tmpfiles})
		if err != nil {
			return res, err
		}
		res.Evidence += " " + id.Evidence
		return res, nil
	}
}
