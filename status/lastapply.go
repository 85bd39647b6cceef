package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// lastApplyFile is the file in the run directory that records the last apply.
const lastApplyFile = "last-apply.json"

// SaveLastApply records a in dir (normally /run/dockerfence), replacing the
// previous record atomically, so that status can show it after the process
// that applied has gone.
func SaveLastApply(dir string, a Apply) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("record last apply: %w", err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".last-apply-*")
	if err != nil {
		return fmt.Errorf("record last apply: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("record last apply: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("record last apply: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("record last apply: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, lastApplyFile)); err != nil {
		return fmt.Errorf("record last apply: %w", err)
	}
	return nil
}

// LoadLastApply returns the last apply recorded in dir for table, or nil if
// none is recorded.
func LoadLastApply(dir, table string) (*Apply, error) {
	data, err := os.ReadFile(filepath.Join(dir, lastApplyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read last apply: %w", err)
	}
	var a Apply
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("read last apply from %s: %w", filepath.Join(dir, lastApplyFile), err)
	}
	if a.Table != table {
		return nil, nil
	}
	return &a, nil
}

// RecordApply saves the outcome of an apply in dir, unless it sent nothing:
// the last apply recorded is then still the one that changed the table.
func RecordApply(dir string, a Apply, changed bool, err error) error {
	switch {
	case err != nil:
		a.Result, a.Error = "failed", err.Error()
	case changed:
		a.Result = "applied"
	default:
		return nil
	}
	return SaveLastApply(dir, a)
}
