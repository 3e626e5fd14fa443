#!/usr/bin/env python
"""RabbitMQ tutorial six, RPC client (pika), as the tutorial writes it.

Additions: n from argv[1] (default 30); host/port from AMQP_HOST/AMQP_PORT (default 127.0.0.1:5672); the
connection is closed before exit.
"""
import os
import sys
import uuid

import pika


# fib(n) has ~0.21 n digits; lift Python's 4300-digit int<->str limit (3.11+) so large n works.
if hasattr(sys, 'set_int_max_str_digits'):
    sys.set_int_max_str_digits(0)

class FibonacciRpcClient(object):

    def __init__(self):
        self.connection = pika.BlockingConnection(
            pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', '127.0.0.1'),
                                      port=int(os.environ.get('AMQP_PORT', '5672'))))

        self.channel = self.connection.channel()

        result = self.channel.queue_declare(queue='', exclusive=True)
        self.callback_queue = result.method.queue

        self.channel.basic_consume(
            queue=self.callback_queue,
            on_message_callback=self.on_response,
            auto_ack=True)

        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n):
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange='',
            routing_key='rpc_queue',
            properties=pika.BasicProperties(
                reply_to=self.callback_queue,
                correlation_id=self.corr_id,
            ),
            body=str(n))
        while self.response is None:
            self.connection.process_data_events(time_limit=None)
        return int(self.response)


n = int(sys.argv[1]) if len(sys.argv) > 1 else 30

fibonacci_rpc = FibonacciRpcClient()

print(f" [x] Requesting fib({n})", flush=True)
response = fibonacci_rpc.call(n)
print(f" [.] Got {response}", flush=True)
fibonacci_rpc.connection.close()
