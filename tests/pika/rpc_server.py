#!/usr/bin/env python
"""RabbitMQ tutorial six, RPC server (pika), as the tutorial writes it.

Additions: fib is iterative (and int<->str unlimited) so large n works; host/port from AMQP_HOST/AMQP_PORT
(default 127.0.0.1:5672); output is flushed so a parent process sees it at once; SIGTERM/SIGINT stop consuming
and close the connection cleanly (connection.close appears on the wire).
"""
import os
import signal
import sys

import pika

# fib(n) has ~0.21 n digits; lift Python's 4300-digit int<->str limit (3.11+) so large n works.
if hasattr(sys, 'set_int_max_str_digits'):
    sys.set_int_max_str_digits(0)

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', '127.0.0.1'),
                              port=int(os.environ.get('AMQP_PORT', '5672'))))

channel = connection.channel()

channel.queue_declare(queue='rpc_queue')


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def on_request(ch, method, props, body):
    n = int(body)

    print(f" [.] fib({n})", flush=True)
    response = fib(n)

    ch.basic_publish(exchange='',
                     routing_key=props.reply_to,
                     properties=pika.BasicProperties(correlation_id = \
                                                         props.correlation_id),
                     body=str(response))
    ch.basic_ack(delivery_tag=method.delivery_tag)


def on_signal(signum, frame):
    # Signal handlers run between bytecodes, possibly inside pika; hand the stop to pika's own loop.
    connection.add_callback_threadsafe(channel.stop_consuming)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)

channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue='rpc_queue', on_message_callback=on_request)

print(" [x] Awaiting RPC requests", flush=True)
channel.start_consuming()
connection.close()
