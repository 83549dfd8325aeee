package restore

import (
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
)

func openFileStore(dir string) (objstore.Store, error) { return file.Open(dir) }
