package simnet

import (
	"time"

	"golang.org/x/sys/unix"
)

// WallClock reads the real monotonic clock. Inside a synctest bubble
// time.Now is virtual; progress reports for people need real time.
func WallClock() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}
