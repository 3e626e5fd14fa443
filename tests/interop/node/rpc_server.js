#!/usr/bin/env node
// RabbitMQ tutorial six, RPC server (amqplib), from rabbitmq/rabbitmq-tutorials
// javascript-nodejs/src/rpc_server.js at 89858b3 (Apache-2.0; see tests/interop/README.md).
// Changed for amqp-rpc's interop tests (marked "interop:"):
//  - the broker address comes from AMQP_HOST/AMQP_PORT (default localhost:5672).

const amqp = require('amqplib');

async function main() {
    // interop: broker address from the environment
    const connection = await amqp.connect('amqp://' + (process.env.AMQP_HOST || 'localhost') + ':' +
        (process.env.AMQP_PORT || '5672'));
    const channel = await connection.createChannel();

    const queue = 'rpc_queue';

    await channel.assertQueue(queue, {
        durable: true,
        arguments: { 'x-queue-type': 'quorum' }
    });
    channel.prefetch(1);
    console.log(' [x] Awaiting RPC requests');
    channel.consume(queue, function reply(msg) {
        const n = parseInt(msg.content.toString());

        console.log(" [.] fib(%d)", n);

        const r = fibonacci(n);

        channel.sendToQueue(msg.properties.replyTo,
            Buffer.from(r.toString()), {
                correlationId: msg.properties.correlationId
            });

        channel.ack(msg);
    });
}

function fibonacci(n) {
    let a = 0;
    let b = 1;
    for (let i = 0; i < n; i++) {
        [a, b] = [b, a + b];
    }
    return a;
}

main();
