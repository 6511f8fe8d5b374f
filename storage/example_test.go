package storage_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/lwgkit/lwgkit/storage"
)

// A node opens its storage file and starts a new incarnation each time its
// process starts. Here the node starts twice.
func Example() {
	dir, err := os.MkdirTemp("", "lwgkit-storage-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "node.db")

	for range 2 {
		db, err := storage.Open(path, storage.Options{})
		if err != nil {
			log.Fatal(err)
		}
		id, err := db.Start(7, "prod")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(id.Node, id.Cluster, id.Incarnation)
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
	// true
}
