package managedfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Header is the first line of every file the agent writes.
const Header = "# managed by kvmnet — do not edit; see /etc/kvmnet/agent.yaml\n"

// DefaultStateDir is where backups and state.json live, relative to the root.
const DefaultStateDir = "var/lib/kvmnet"

// ErrNotManaged is wrapped when an operation needs a file kvmnet manages and the file is not one.
var ErrNotManaged = errors.New("file not managed by kvmnet")

// Options configures a Store.
type Options struct {
	// Root is the filesystem root every path is relative to ("/" in production, t.TempDir() in
	// tests). Required.
	Root string
	// StateDir holds backup/ and state.json, relative to Root (a leading "/" is ignored). Default
	// DefaultStateDir.
	StateDir string
	// Allowed lists directories relative to Root whose direct children may be written. Default
	// DefaultAllowed().
	Allowed []string
	// Logger receives one line per change. Default: discard.
	Logger *slog.Logger
	// Now returns the current time (recorded in state.json). Default time.Now.
	Now func() time.Time
}

// Store writes, backs up and restores the agent's files under one root. It is safe for concurrent
// use.
type Store struct {
	root     string
	stateRel string // relative to root
	stateDir string // absolute
	allowed  []string
	log      *slog.Logger
	now      func() time.Time
	mu       sync.Mutex
}

// Entry is one managed file in state.json.
type Entry struct {
	// Path as the guest sees it, e.g. "/etc/sysctl.d/99-kvmnet-disable-ipv6.conf".
	Path string `json:"path"`
	// Existed is true when the file had content before kvmnet first changed it.
	Existed bool `json:"existed"`
	// Backup is the backup of that content, relative to the root; empty when !Existed.
	Backup string `json:"backup,omitempty"`
	// Mode is the permission bits of the original file (or of kvmnet's file when it created it).
	Mode fs.FileMode `json:"mode"`
	// Owner is the original file's owner and group, put back with its content; nil when kvmnet
	// created the file (or recorded it before owners were kept).
	Owner *Owner `json:"owner,omitempty"`
	// Since is when kvmnet first changed the file.
	Since time.Time `json:"since"`
}

// Owner is a file's numeric owner and group.
type Owner struct {
	// UID and GID of the file.
	UID int `json:"uid"`
	GID int `json:"gid"`
}

type stateFile struct {
	Version int     `json:"version"`
	Files   []Entry `json:"files"`
}

// Result describes what one operation did to one file.
type Result struct {
	// Path as the guest sees it.
	Path string
	// Changed is false when the file already had the wanted content (nothing was written).
	Changed bool
	// Old is the content before the operation; nil when the file did not exist.
	Old []byte
	// New is the content after the operation; nil when the file no longer exists.
	New []byte
}

// New returns a Store for opts.Root. The root must exist; the state directory is created on the
// first change.
func New(opts Options) (*Store, error) {
	if opts.Root == "" {
		return nil, errors.New("files: root directory is required")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("files: root %s: %w", opts.Root, err)
	}
	root, err = filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("files: root %s: %w", opts.Root, err)
	}
	sd := strings.Trim(opts.StateDir, "/")
	if sd == "" {
		sd = DefaultStateDir
	}
	if filepath.Clean(sd) != sd || strings.HasPrefix(sd, "..") {
		return nil, fmt.Errorf("files: state dir %q must be a clean path inside the root", opts.StateDir)
	}
	allowed := opts.Allowed
	if allowed == nil {
		allowed = DefaultAllowed()
	}
	for i, a := range allowed {
		a = strings.Trim(a, "/")
		if a == "" || filepath.Clean(a) != a || strings.HasPrefix(a, "..") {
			return nil, fmt.Errorf("files: allowed directory %q must be a clean path inside the root", allowed[i])
		}
	}
	s := &Store{
		root:     root,
		stateRel: sd,
		stateDir: filepath.Join(root, sd),
		log:      opts.Logger,
		now:      opts.Now,
	}
	for _, a := range allowed {
		s.allowed = append(s.allowed, strings.Trim(a, "/"))
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Root returns the absolute root directory of the Store.
func (s *Store) Root() string { return s.root }

// HasHeader reports whether b starts with kvmnet's header line.
func HasHeader(b []byte) bool { return bytes.HasPrefix(b, []byte(Header)) }

// StripHeader returns b without kvmnet's header line (b itself when it has none).
func StripHeader(b []byte) []byte { return bytes.TrimPrefix(b, []byte(Header)) }

// WithHeader returns body as the Store writes it: the header line, then body without any header.
func WithHeader(body []byte) []byte {
	return append([]byte(Header), StripHeader(body)...)
}

// Read returns the current content of path (validated like a write); fs.ErrNotExist when absent.
func (s *Store) Read(path string) ([]byte, error) {
	p, err := s.resolve(path)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p.abs)
}

// Write makes path contain the header followed by body (any header already in body is not
// repeated). Before kvmnet's first change to the file, its previous content is backed up and the
// file is recorded in state.json. mode 0 keeps the existing file's mode (0644 for new files).
// Writing content the file already has changes nothing and reports Changed=false.
func (s *Store) Write(path string, body []byte, mode fs.FileMode) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.resolve(path)
	if err != nil {
		return Result{}, err
	}
	want := WithHeader(body)
	old, oldMode, owner, existed, err := readExisting(p.abs)
	if err != nil {
		return Result{}, err
	}
	res := Result{Path: p.guest, Old: old, New: want}
	if existed && bytes.Equal(old, want) {
		res.New = old
		return res, nil
	}
	if mode == 0 {
		mode = 0o644
		if existed {
			mode = oldMode
		}
	}
	st, err := s.loadState()
	if err != nil {
		return Result{}, err
	}
	if st.find(p.guest) < 0 {
		e := Entry{Path: p.guest, Existed: existed, Mode: mode, Since: s.now().UTC()}
		if existed {
			e.Mode, e.Owner = oldMode, owner
			e.Backup = filepath.Join(s.stateRel, "backup", url.QueryEscape(p.rel))
			if err := atomicWrite(filepath.Join(s.root, e.Backup), old, 0o600, nil); err != nil {
				return Result{}, fmt.Errorf("back up %s before changing it: %w", p.guest, err)
			}
		}
		st.Files = append(st.Files, e)
		// Recorded before the change: a crash between the two leaves a restorable record.
		if err := s.saveState(st); err != nil {
			return Result{}, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(p.abs), 0o755); err != nil {
		return Result{}, fmt.Errorf("create directory for %s: %w", p.guest, err)
	}
	// A replaced file keeps its owner and group, as it keeps its mode.
	if err := atomicWrite(p.abs, want, mode, owner); err != nil {
		return Result{}, fmt.Errorf("write %s: %w", p.guest, err)
	}
	res.Changed = true
	s.log.Info("file written", "path", p.guest, "bytes", len(want), "existed", existed)
	return res, nil
}

// Managed returns the guest paths of every file kvmnet manages, sorted.
func (s *Store) Managed() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.loadState()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(st.Files))
	for _, e := range st.Files {
		out = append(out, e.Path)
	}
	slices.Sort(out)
	return out, nil
}

// Entry returns the state.json record of path; ok is false when kvmnet does not manage it.
func (s *Store) Entry(path string) (e Entry, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, st, i, err := s.lookup(path)
	if err != nil {
		return Entry{}, false, err
	}
	if i < 0 {
		return Entry{}, false, nil
	}
	return st.Files[i], true, nil
}

// Restore puts path back as it was before kvmnet's first change: the backup's content when the
// file existed, no file when kvmnet created it. The file stops being managed.
func (s *Store) Restore(path string) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, st, i, err := s.lookup(path)
	if err != nil {
		return Result{}, err
	}
	if i < 0 {
		return Result{}, fmt.Errorf("restore %s: %w (nothing to restore)", p.guest, ErrNotManaged)
	}
	res, err := s.restoreEntry(p, st.Files[i])
	if err != nil {
		return Result{}, err
	}
	st.Files = slices.Delete(st.Files, i, i+1)
	return res, s.saveState(st)
}

// RestoreAll restores every managed file (see Restore). It continues past failures and returns
// them joined; the files it could not restore stay managed.
func (s *Store) RestoreAll() ([]Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.loadState()
	if err != nil {
		return nil, err
	}
	var out []Result
	var errs []error
	var keep []Entry
	for _, e := range st.Files {
		p, err := s.resolve(e.Path)
		if err == nil {
			var res Result
			res, err = s.restoreEntry(p, e)
			if err == nil {
				out = append(out, res)
				continue
			}
		}
		errs = append(errs, err)
		keep = append(keep, e)
	}
	st.Files = keep
	if err := s.saveState(st); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// Remove deletes a file kvmnet created and stops managing it. It refuses files that existed before
// kvmnet changed them (use Restore for those) and files kvmnet does not manage.
func (s *Store) Remove(path string) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, st, i, err := s.lookup(path)
	if err != nil {
		return Result{}, err
	}
	if i < 0 {
		return Result{}, fmt.Errorf("remove %s: %w; kvmnet only removes files it created", p.guest, ErrNotManaged)
	}
	if st.Files[i].Existed {
		return Result{}, fmt.Errorf("remove %s: the file existed before kvmnet changed it; use Restore to put the original back", p.guest)
	}
	res, err := s.restoreEntry(p, st.Files[i])
	if err != nil {
		return Result{}, err
	}
	st.Files = slices.Delete(st.Files, i, i+1)
	return res, s.saveState(st)
}

// lookup resolves path and loads the state; i is path's index in st.Files, -1 when unmanaged.
// The caller holds s.mu.
func (s *Store) lookup(path string) (p guestPath, st *stateFile, i int, err error) {
	if p, err = s.resolve(path); err != nil {
		return guestPath{}, nil, -1, err
	}
	if st, err = s.loadState(); err != nil {
		return guestPath{}, nil, -1, err
	}
	return p, st, st.find(p.guest), nil
}

// restoreEntry makes the file match e's pre-kvmnet state and deletes e's backup.
func (s *Store) restoreEntry(p guestPath, e Entry) (Result, error) {
	old, _, _, existed, err := readExisting(p.abs)
	if err != nil {
		return Result{}, err
	}
	res := Result{Path: p.guest, Old: old}
	if e.Existed {
		backup := filepath.Join(s.root, e.Backup)
		content, err := os.ReadFile(backup)
		if err != nil {
			return Result{}, fmt.Errorf("restore %s: read backup %s: %w (the current file was left as it is)", p.guest, backup, err)
		}
		res.New = content
		if !existed || !bytes.Equal(old, content) {
			if err := atomicWrite(p.abs, content, e.Mode, e.Owner); err != nil {
				return Result{}, fmt.Errorf("restore %s: %w", p.guest, err)
			}
			res.Changed = true
		}
		if err := RemoveSynced(backup); err != nil {
			return Result{}, fmt.Errorf("remove backup of %s: %w", p.guest, err)
		}
	} else if existed {
		if err := RemoveSynced(p.abs); err != nil {
			return Result{}, fmt.Errorf("remove %s: %w", p.guest, err)
		}
		res.Changed = true
	}
	s.log.Info("file restored", "path", p.guest, "changed", res.Changed, "removed", res.New == nil)
	return res, nil
}

func (st *stateFile) find(guest string) int {
	return slices.IndexFunc(st.Files, func(e Entry) bool { return e.Path == guest })
}

func (s *Store) statePath() string { return filepath.Join(s.stateDir, "state.json") }

func (s *Store) loadState() (*stateFile, error) {
	b, err := os.ReadFile(s.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return &stateFile{Version: 1}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read kvmnet state %s: %w", s.statePath(), err)
	}
	st := &stateFile{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("parse kvmnet state %s: %w (fix or remove it; backups are in %s)",
			s.statePath(), err, filepath.Join(s.stateDir, "backup"))
	}
	return st, nil
}

func (s *Store) saveState(st *stateFile) error {
	st.Version = 1
	if st.Files == nil {
		st.Files = []Entry{}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicWrite(s.statePath(), append(b, '\n'), 0o600, nil); err != nil {
		return fmt.Errorf("save kvmnet state: %w", err)
	}
	return nil
}

// readExisting returns the content, mode and owner of a regular file, or existed=false.
func readExisting(abs string) (content []byte, mode fs.FileMode, owner *Owner, existed bool, err error) {
	fi, err := os.Lstat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil, false, nil
	}
	if err != nil {
		return nil, 0, nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, nil, false, fmt.Errorf("%s: %w: not a regular file", abs, ErrNotAllowed)
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		return nil, 0, nil, false, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		owner = &Owner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	return b, fi.Mode().Perm(), owner, true, nil
}

// atomicWrite writes content to a temporary file in abs's directory, gives it mode and owner (nil:
// the agent's), fsyncs it, renames it over abs and fsyncs the directory, so readers see either the
// old or the new file, never a mix, and never one with the wrong owner.
func atomicWrite(abs string, content []byte, mode fs.FileMode, owner *Owner) error {
	dir := filepath.Dir(abs)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".kvmnet-tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(content); err != nil {
		f.Close()
		return err
	}
	if owner != nil {
		if err := f.Chown(owner.UID, owner.GID); err != nil {
			f.Close()
			return fmt.Errorf("keep owner %d:%d: %w", owner.UID, owner.GID, err)
		}
	}
	// After Chown: changing the owner clears set-id bits.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, abs); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

// WriteAtomic writes content to abs (any path, not only the Store's) the way the Store writes its
// files: temporary file, fsync, rename, fsync of the directory. Other owners of durable state (the
// rollback record) use it so there is one implementation of that sequence.
func WriteAtomic(abs string, content []byte, mode fs.FileMode) error {
	return atomicWrite(abs, content, mode, nil)
}

// RemoveSynced removes abs and fsyncs its directory, so the removal survives a crash; an absent
// file is not an error.
func RemoveSynced(abs string) error {
	if err := os.Remove(abs); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return syncDir(filepath.Dir(abs))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
