// Command natsserver is nats-server, built from the nats-server/v2 module
// roomcast already requires, so the e2e tests can run a NATS cluster as
// separate processes (one per network namespace) of exactly the version the
// node is tested against, without a nats-server binary on the machine. It
// takes nats-server's own command line:
//
//	go run ./e2e/natsserver -a 127.0.0.1 -p 4222 -js -sd /tmp/js \
//	    -n nats-a --cluster_name rc --cluster nats://127.0.0.1:6222 \
//	    --routes nats://127.0.0.1:6222,nats://127.0.0.1:6223
//
// The body is nats-server's main.go minus its usage text.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	const exe = "natsserver"
	fs := flag.NewFlagSet(exe, flag.ExitOnError)
	opts, err := server.ConfigureOptions(fs, os.Args[1:],
		server.PrintServerAndExit, fs.Usage, server.PrintTLSHelpAndDie)
	if err != nil {
		server.PrintAndDie(fmt.Sprintf("%s: %s", exe, err))
	}
	s, err := server.NewServer(opts)
	if err != nil {
		server.PrintAndDie(fmt.Sprintf("%s: %s", exe, err))
	}
	s.ConfigureLogger()
	if err := server.Run(s); err != nil {
		server.PrintAndDie(err.Error())
	}
	s.WaitForShutdown()
}
