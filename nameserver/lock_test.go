package nameserver

import (
	"errors"
	"testing"
	"time"

	"depot"
)

// TestRetentionChange: S3's rules for changing a version's retention.
func TestRetentionChange(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	lock := func(mode string, d time.Duration) *depot.ObjectLock {
		if mode == "" {
			return &depot.ObjectLock{}
		}
		return &depot.ObjectLock{Mode: mode, RetainUntil: now.Add(d)}
	}
	for _, tc := range []struct {
		name     string
		old, new *depot.ObjectLock
		bypass   bool
		ok       bool
	}{
		{"NoneToCompliance", nil, lock(depot.LockCompliance, time.Hour), false, true},
		{"ExpiredCompliance", lock(depot.LockCompliance, -time.Second), lock("", 0), false, true},
		{"ComplianceExtend", lock(depot.LockCompliance, time.Hour), lock(depot.LockCompliance, 2*time.Hour), false, true},
		{"ComplianceShorten", lock(depot.LockCompliance, time.Hour), lock(depot.LockCompliance, time.Minute), true, false},
		{"ComplianceRemove", lock(depot.LockCompliance, time.Hour), lock("", 0), true, false},
		{"ComplianceToGovernance", lock(depot.LockCompliance, time.Hour), lock(depot.LockGovernance, 2*time.Hour), true, false},
		{"GovernanceExtend", lock(depot.LockGovernance, time.Hour), lock(depot.LockGovernance, 2*time.Hour), false, true},
		{"GovernanceToCompliance", lock(depot.LockGovernance, time.Hour), lock(depot.LockCompliance, time.Hour), false, true},
		{"GovernanceShorten", lock(depot.LockGovernance, time.Hour), lock(depot.LockGovernance, time.Minute), false, false},
		{"GovernanceShortenBypass", lock(depot.LockGovernance, time.Hour), lock(depot.LockGovernance, time.Minute), true, true},
		{"GovernanceRemove", lock(depot.LockGovernance, time.Hour), lock("", 0), false, false},
		{"GovernanceRemoveBypass", lock(depot.LockGovernance, time.Hour), lock("", 0), true, true},
	} {
		err := retentionChange(tc.old, tc.new, now, tc.bypass)
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, depot.ErrLocked) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	hold := &depot.ObjectLock{LegalHold: true}
	if !hold.Protects(now, true) || lock(depot.LockGovernance, time.Hour).Protects(now, true) ||
		!lock(depot.LockCompliance, time.Hour).Protects(now, true) || lock(depot.LockCompliance, -time.Hour).Protects(now, false) {
		t.Error("Protects")
	}
}
