package nsclient

import (
	"context"
	"errors"

	"depot"
)

// refusals are the answers by which the nameserver says that it did not
// apply a command: each is decided before anything is written (or in a
// transaction that is then not committed), on the nameserver that leads.
var refusals = []error{
	depot.ErrNotFound,
	depot.ErrBadRequest,
	depot.ErrBadFid,
	depot.ErrExists,
	depot.ErrNotEmpty,
	depot.ErrTooLarge,
	depot.ErrUnauthorized,
	depot.ErrPrecondition,
	depot.ErrLocked,
}

// Refused reports whether err, from a call that asks the nameserver to
// change its state (PutObject, PutPart, CompleteUpload...), is a definite
// refusal: the command was not applied and never will be. Every other
// error leaves the outcome unknown, because the command may have been
// applied or may still be: the caller's context ended while the command
// was queued or replicated, a connection broke before the answer came, the
// leader lost its leadership after the command reached the raft log
// (NoLeader, even after the retries), an internal error.
//
// A caller that stored bytes for the command discards them only after a
// refusal. After an unknown outcome it keeps them: if the command did
// apply they are live, and if it did not, the orphan sweep, which deletes
// only what nothing references, reclaims them.
func Refused(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for _, r := range refusals {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}
