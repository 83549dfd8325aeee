package main

import (
	"os"

	"github.com/tidemark/tidemark/internal/cli"
)

func main() {
	os.Exit(cli.Execute(newRootCmd()))
}
