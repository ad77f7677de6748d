package history

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/names"
)

// Defaults for a Config entry; each says why.
const (
	// DefaultSize: 100 messages per room is a chat screen and a bit,
	// enough to ride out a reconnect of a few seconds in a busy room.
	DefaultSize = 100
	// DefaultTTL: an hour covers a laptop lid closed over lunch without
	// keeping stale rooms on disk for days.
	DefaultTTL = time.Hour
	// MaxSize bounds Size: a replay or a history page is read into memory
	// on the node, so a room's history must stay a bounded amount of work.
	MaxSize = 1_000_000
	// MinTTL: JetStream checks ages about once a second; below that the
	// limit means nothing.
	MinTTL = time.Second
)

// Config is one entry of the `history` configuration: rooms matching Rooms
// keep their last Size messages, each for at most TTL.
type Config struct {
	// Rooms is a room pattern with NATS wildcards: "chat.>", "doc.*".
	// Patterns of two entries must not overlap: a room keeps one history.
	Rooms string `yaml:"rooms" json:"rooms"`
	// Size is the number of messages kept per room (JetStream
	// MaxMsgsPerSubject); 0 means DefaultSize.
	Size int `yaml:"size" json:"size"`
	// TTL is how long a message is kept (JetStream MaxAge); 0 means
	// DefaultTTL.
	TTL time.Duration `yaml:"ttl" json:"ttl"`
	// Replicas of the stream: 1 on a single NATS server, 3 on a cluster;
	// 0 means 1.
	Replicas int `yaml:"replicas" json:"replicas"`
}

func (c Config) withDefaults() Config {
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

// Validate checks a whole history configuration: every pattern valid, sizes
// and TTLs in range, no two patterns overlapping. Errors name the entry and
// say what to change.
func Validate(list []Config) error {
	for i, c := range list {
		what := fmt.Sprintf("history entry %d", i+1)
		if c.Rooms == "" {
			return fmt.Errorf("%s: rooms is missing: give a room pattern such as \"chat.>\"", what)
		}
		what = fmt.Sprintf("history entry %q", c.Rooms)
		if err := names.CheckPattern(c.Rooms); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if c.Size < 0 || c.Size > MaxSize {
			return fmt.Errorf("%s: size %d is out of range: use 1 to %d messages per room (0 = %d)", what, c.Size, MaxSize, DefaultSize)
		}
		if c.TTL < 0 || (c.TTL > 0 && c.TTL < MinTTL) {
			return fmt.Errorf("%s: ttl %s is too short: use at least %s (0 = %s)", what, c.TTL, MinTTL, DefaultTTL)
		}
		if c.Replicas < 0 || c.Replicas > 5 {
			return fmt.Errorf("%s: replicas %d is invalid: use 1 to 5 (3 on a 3-server NATS cluster)", what, c.Replicas)
		}
		for _, o := range list[:i] {
			if overlap(o.Rooms, c.Rooms) {
				return fmt.Errorf("history entries %q and %q overlap: a room can keep only one history; make the patterns disjoint", o.Rooms, c.Rooms)
			}
		}
	}
	return nil
}

// overlap reports whether some room matches both valid patterns a and b.
func overlap(a, b string) bool {
	for {
		at, arest, amore := strings.Cut(a, ".")
		bt, brest, bmore := strings.Cut(b, ".")
		if at == ">" || bt == ">" {
			return true
		}
		if at != "*" && bt != "*" && at != bt {
			return false
		}
		if !amore || !bmore {
			return amore == bmore
		}
		a, b = arest, brest
	}
}

// streamName is the JetStream stream of a room subject pattern: stable
// across nodes and restarts, distinct per prefix and pattern, and a valid
// stream name whatever the pattern (no '.', '*' or '>'); the pattern itself
// is in the stream's description.
func streamName(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return "rc-history-" + hex.EncodeToString(sum[:6])
}

// liveDestination is where a stream capturing rc.room.<pattern> republishes
// its messages: rc.stored.<pattern>, in NATS subject-transform syntax ("*"
// tokens become {{wildcard(n)}}, a final ">" stays), so that a message of
// rc.room.<room> goes to rc.stored.<room>.
func liveDestination(storedPrefix, pattern string) string {
	var b strings.Builder
	b.WriteString(storedPrefix)
	n := 0
	for i, tok := range strings.Split(pattern, ".") {
		if i > 0 {
			b.WriteByte('.')
		}
		switch tok {
		case "*":
			n++
			fmt.Fprintf(&b, "{{wildcard(%d)}}", n)
		default:
			b.WriteString(tok) // a literal or the final ">"
		}
	}
	return b.String()
}

// errConfig marks errors that retrying cannot fix.
var errConfig = errors.New("history: configuration")
