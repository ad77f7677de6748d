package backend

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// Database sync (README, "Database sync"): when an entity changes, the
// back-end publishes entity:created, entity:updated or entity:deleted to
// the room whose members show it, with
//
//	{"collection": "todos", "id": "42", "data": {...}, "version": 7}
//
// and clients keep a reactive collection from these events
// (@roomcast/client's EntityCollection): an event whose version is not
// above the last applied one for that id is stale and ignored, so publish
// the row's version (an updated_at in ms, a revision counter) and events
// may arrive in any order. data is the whole entity (nothing for deleted).

// Entity change kinds: the event names are "entity:" + kind.
const (
	EntityCreated = "created"
	EntityUpdated = "updated"
	EntityDeleted = "deleted"
)

// Entity is the data of an entity event.
type Entity struct {
	Collection string `json:"collection"`
	ID         string `json:"id"`
	Data       any    `json:"data,omitempty"`
	Version    int64  `json:"version,omitempty"`
}

// PublishEntity publishes an entity event to room (rc.room.<room>, prefix
// "rc"): kind is EntityCreated, EntityUpdated or EntityDeleted; data is the
// entity (ignored for deleted); version orders the changes of one id
// (0: always applied).
func PublishEntity(nc *nats.Conn, room, kind, collection, id string, data any, version int64) error {
	return publishEntity(nc, DefaultPrefix, room, kind, collection, id, data, version)
}

// PublishEntity is the package's PublishEntity with the Backend's prefix.
func (b *Backend) PublishEntity(room, kind, collection, id string, data any, version int64) error {
	return publishEntity(b.nc, b.o.Prefix, room, kind, collection, id, data, version)
}

func publishEntity(nc *nats.Conn, prefix, room, kind, collection, id string, data any, version int64) error {
	switch kind {
	case EntityCreated, EntityUpdated:
	case EntityDeleted:
		data = nil
	default:
		return fmt.Errorf("backend: entity kind %q is unknown: use created, updated or deleted", kind)
	}
	if collection == "" || id == "" {
		return fmt.Errorf("backend: an entity event needs a collection and an id")
	}
	return publish(nc, prefix+".room."+room, "entity:"+kind, "", Entity{Collection: collection, ID: id, Data: data, Version: version})
}
