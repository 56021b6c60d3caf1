package fault

import (
	"errors"
	"fmt"
)

// UsageError is returned for bad arguments and for refused safety checks.
// The nwfault command reports it on one line and exits with status 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// IsUsage reports whether err (or an error it wraps) is a *UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}
