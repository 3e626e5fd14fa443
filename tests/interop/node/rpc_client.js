#!/usr/bin/env node
// RabbitMQ tutorial six, RPC client (amqplib), from rabbitmq/rabbitmq-tutorials
// javascript-nodejs/src/rpc_client.js at b898b4a (Apache-2.0; see tests/interop/README.md).
// Changed for amqp-rpc's interop tests (marked "interop:"):
//  - the broker address comes from AMQP_HOST/AMQP_PORT (default localhost:5672).

const amqp = require('amqplib');

const args = process.argv.slice(2);

if (args.length === 0) {
    console.log("Usage: rpc_client.js num");
    process.exit(1);
}

async function main() {
    // interop: broker address from the environment
    const connection = await amqp.connect('amqp://' + (process.env.AMQP_HOST || 'localhost') + ':' +
        (process.env.AMQP_PORT || '5672'));
    const channel = await connection.createChannel();

    const correlationId = generateUuid();
    const num = parseInt(args[0]);

    console.log(' [x] Requesting fib(%d)', num);

    const result = await new Promise((resolve) => {
        // Consume from the Direct Reply-to pseudo-queue (noAck is mandatory)
        channel.consume('amq.rabbitmq.reply-to', (msg) => {
            if (msg.properties.correlationId === correlationId) {
                resolve(msg.content.toString());
            }
        }, { noAck: true });

        channel.sendToQueue('rpc_queue',
            Buffer.from(num.toString()), {
                correlationId: correlationId,
                replyTo: 'amq.rabbitmq.reply-to'
            });
    });

    console.log(' [.] Got %s', result);
    await connection.close();
}

function generateUuid() {
    return Math.random().toString() +
        Math.random().toString() +
        Math.random().toString();
}

main();
