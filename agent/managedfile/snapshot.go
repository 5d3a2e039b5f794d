package managedfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Snapshot is the state of some files (content and kvmnet's record of them) at one moment, kept so
// a checkpoint can be rolled back to exactly that moment. It is plain data: the caller may persist
// it (e.g. as JSON) to survive an agent restart.
type Snapshot struct {
	// Files, one per path given to Snapshot.
	Files []SnapshotFile `json:"files"`
}

// SnapshotFile is one file in a Snapshot.
type SnapshotFile struct {
	// Path as the guest sees it.
	Path string `json:"path"`
	// Exists reports whether the file existed.
	Exists bool `json:"exists"`
	// Content of the file when it existed.
	Content []byte `json:"content,omitempty"`
	// Mode of the file when it existed.
	Mode fs.FileMode `json:"mode,omitempty"`
	// Owner of the file when it existed.
	Owner *Owner `json:"owner,omitempty"`
	// Entry is kvmnet's state.json record of the file; nil when it was not managed.
	Entry *Entry `json:"entry,omitempty"`
	// BackupContent is the content of Entry's backup, when it has one.
	BackupContent []byte `json:"backup_content,omitempty"`
}

// Snapshot records the current state of paths (each validated like a write).
func (s *Store) Snapshot(paths ...string) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.loadState()
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{}
	for _, path := range paths {
		p, err := s.resolve(path)
		if err != nil {
			return nil, err
		}
		content, mode, owner, existed, err := readExisting(p.abs)
		if err != nil {
			return nil, err
		}
		f := SnapshotFile{Path: p.guest, Exists: existed, Content: content, Mode: mode, Owner: owner}
		if i := st.find(p.guest); i >= 0 {
			e := st.Files[i]
			f.Entry = &e
			if e.Backup != "" {
				b, err := os.ReadFile(filepath.Join(s.root, e.Backup))
				if err != nil {
					return nil, fmt.Errorf("snapshot %s: read backup: %w", p.guest, err)
				}
				f.BackupContent = b
			}
		}
		snap.Files = append(snap.Files, f)
	}
	return snap, nil
}

// RestoreSnapshot puts every file of snap back as it was when the snapshot was taken, content and
// kvmnet's record alike. It continues past failures and returns them joined.
func (s *Store) RestoreSnapshot(snap *Snapshot) ([]Result, error) {
	if snap == nil {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.loadState()
	if err != nil {
		return nil, err
	}
	var out []Result
	var errs []error
	for _, f := range snap.Files {
		p, err := s.resolve(f.Path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cur, curMode, curOwner, existed, err := readExisting(p.abs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res := Result{Path: p.guest, Old: cur, New: f.Content}
		switch {
		case f.Exists && (!existed || !bytes.Equal(cur, f.Content) || curMode != f.Mode || !sameOwner(curOwner, f.Owner)):
			if err := atomicWrite(p.abs, f.Content, f.Mode, f.Owner); err != nil {
				errs = append(errs, fmt.Errorf("restore %s: %w", p.guest, err))
				continue
			}
			res.Changed = true
		case !f.Exists && existed:
			if err := RemoveSynced(p.abs); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", p.guest, err))
				continue
			}
			res.Changed = true
		}
		i := st.find(p.guest)
		switch {
		case f.Entry == nil && i >= 0:
			if b := st.Files[i].Backup; b != "" {
				if err := RemoveSynced(filepath.Join(s.root, b)); err != nil {
					errs = append(errs, err)
				}
			}
			st.Files = slices.Delete(st.Files, i, i+1)
		case f.Entry != nil:
			if f.Entry.Backup != "" {
				if err := atomicWrite(filepath.Join(s.root, f.Entry.Backup), f.BackupContent, 0o600, nil); err != nil {
					errs = append(errs, err)
				}
			}
			if i >= 0 {
				st.Files[i] = *f.Entry
			} else {
				st.Files = append(st.Files, *f.Entry)
			}
		}
		s.log.Info("file rolled back", "path", p.guest, "changed", res.Changed)
		out = append(out, res)
	}
	if err := s.saveState(st); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// sameOwner reports whether a and b name the same owner (nil: unknown, matches anything).
func sameOwner(a, b *Owner) bool { return a == nil || b == nil || *a == *b }
