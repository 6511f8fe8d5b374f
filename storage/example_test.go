package storage_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/lwgkit/lwgkit/storage"
)

// A node opens its storage file and starts a new incarnation each time its
// process starts. Here the node starts twice; the second time it finds the
// object it hosts, the object's applied index and its snapshot.
func Example() {
	dir, err := os.MkdirTemp("", "lwgkit-storage-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "node.db")

	for run := range 2 {
		db, err := storage.Open(path, storage.Options{})
		if err != nil {
			log.Fatal(err)
		}
		id, err := db.Start(7, "prod")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(id.Node, id.Cluster, id.Incarnation)
		if run == 0 {
			// Host an object, apply commands, snapshot its state.
			if err := db.PutObject("counter", []byte("kind=counter")); err != nil {
				log.Fatal(err)
			}
			if err := db.SetApplied("counter", 42); err != nil {
				log.Fatal(err)
			}
			w, err := db.CreateSnapshot("counter", []byte("index=42"))
			if err != nil {
				log.Fatal(err)
			}
			if _, err := io.Copy(w, strings.NewReader("state at 42")); err != nil {
				log.Fatal(err)
			}
			if _, err := w.Commit(); err != nil {
				log.Fatal(err)
			}
		} else {
			// Restart: reopen every hosted object from its snapshot.
			objects, err := db.Objects()
			if err != nil {
				log.Fatal(err)
			}
			for object := range objects {
				applied, _, err := db.Applied(object)
				if err != nil {
					log.Fatal(err)
				}
				info, ok, err := db.Snapshot(object)
				if err != nil || !ok {
					log.Fatal(ok, err)
				}
				r, err := db.OpenSnapshot(object, info.Gen)
				if err != nil {
					log.Fatal(err)
				}
				state, err := io.ReadAll(r) // checks the SHA-256 at the end
				if err != nil {
					log.Fatal(err)
				}
				fmt.Printf("%s: applied %d, snapshot %s: %q\n", object, applied, info.Meta, state)
			}
		}
		if err := db.Close(); err != nil {
			log.Fatal(err)
		}
	}

	// Another node's process pointed at this data directory is refused.
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	_, err = db.Start(8, "prod")
	fmt.Println(errors.Is(err, storage.ErrWrongNode))
	// Output:
	// 7 prod 1
	// 7 prod 2
	// counter: applied 42, snapshot index=42: "state at 42"
	// true
}
