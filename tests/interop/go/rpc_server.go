// RabbitMQ tutorial six, RPC server (amqp091-go), from rabbitmq/rabbitmq-tutorials
// go/rpc_server.go at 89858b3 (Apache-2.0; see tests/interop/README.md).
// Changed for amqp-rpc's interop tests (marked "interop:"):
//  - the broker address comes from AMQP_HOST/AMQP_PORT (default localhost:5672);
//  - the quorum queue argument is spelled out (amqp091-go 1.5.0 has no QueueTypeArg constant).
package main

import (
	"context"
	"log"
	"os" // interop
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func failOnError(err error, msg string) {
	if err != nil {
		log.Panicf("%s: %s", msg, err)
	}
}

func fib(n int) int {
	a, b := 0, 1
	for i := 0; i < n; i++ {
		a, b = b, a+b
	}
	return a
}

func main() {
	// interop: broker address from the environment
	conn, err := amqp.Dial("amqp://guest:guest@" + getenv("AMQP_HOST", "localhost") + ":" + getenv("AMQP_PORT", "5672") + "/")
	failOnError(err, "Failed to connect to RabbitMQ")
	defer conn.Close()

	ch, err := conn.Channel()
	failOnError(err, "Failed to open a channel")
	defer ch.Close()

	q, err := ch.QueueDeclare(
		"rpc_queue", // name
		true,        // durability
		false,       // delete when unused
		false,       // exclusive
		false,       // no-wait
		amqp.Table{
			// interop: Debian's amqp091-go 1.5.0 predates the QueueTypeArg and QueueTypeQuorum
			// constants; their values.
			"x-queue-type": "quorum",
		},
	)
	failOnError(err, "Failed to declare a queue")

	err = ch.Qos(
		1,     // prefetch count
		0,     // prefetch size
		false, // global
	)
	failOnError(err, "Failed to set QoS")

	msgs, err := ch.Consume(
		q.Name, // queue
		"",     // consumer
		false,  // auto-ack
		false,  // exclusive
		false,  // no-local
		false,  // no-wait
		nil,    // args
	)
	failOnError(err, "Failed to register a consumer")

	var forever chan struct{}

	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for d := range msgs {
			n, err := strconv.Atoi(string(d.Body))
			failOnError(err, "Failed to convert body to integer")

			log.Printf(" [.] fib(%d)", n)
			response := fib(n)

			err = ch.PublishWithContext(ctx,
				"",        // exchange
				d.ReplyTo, // routing key
				false,     // mandatory
				false,     // immediate
				amqp.Publishing{
					ContentType:   "text/plain",
					CorrelationId: d.CorrelationId,
					Body:          []byte(strconv.Itoa(response)),
				})
			failOnError(err, "Failed to publish a message")

			d.Ack(false)
		}
	}()

	log.Printf(" [*] Awaiting RPC requests")
	<-forever
}

// interop: an environment variable or a default.
func getenv(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
