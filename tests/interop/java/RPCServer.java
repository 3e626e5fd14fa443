// RabbitMQ tutorial six, RPC server (RabbitMQ Java client), from rabbitmq/rabbitmq-tutorials
// java/RPCServer.java at 89858b3 (Apache-2.0; see tests/interop/README.md).
// Changed for amqp-rpc's interop tests (marked "interop:"):
//  - the broker address comes from AMQP_HOST/AMQP_PORT (default localhost:5672).

import com.rabbitmq.client.*;
import java.util.Map;

public class RPCServer {

    private static final String RPC_QUEUE_NAME = "rpc_queue";

    private static int fib(int n) {
        int a = 0;
        int b = 1;
        for (int i = 0; i < n; i++) {
            int next = a + b;
            a = b;
            b = next;
        }
        return a;
    }

    public static void main(String[] argv) throws Exception {
        ConnectionFactory factory = new ConnectionFactory();
        // interop: broker address from the environment
        factory.setHost(System.getenv().getOrDefault("AMQP_HOST", "localhost"));
        factory.setPort(Integer.parseInt(System.getenv().getOrDefault("AMQP_PORT", "5672")));

        Connection connection = factory.newConnection();
        Channel channel = connection.createChannel();
        channel.queueDeclare(RPC_QUEUE_NAME, true, false, false, Map.of("x-queue-type", "quorum"));
        channel.queuePurge(RPC_QUEUE_NAME);

        channel.basicQos(1);

        System.out.println(" [x] Awaiting RPC requests");

        DeliverCallback deliverCallback = (consumerTag, delivery) -> {
            AMQP.BasicProperties replyProps = new AMQP.BasicProperties
                    .Builder()
                    .correlationId(delivery.getProperties().getCorrelationId())
                    .build();

            String response = "";
            try {
                String message = new String(delivery.getBody(), "UTF-8");
                int n = Integer.parseInt(message);

                System.out.println(" [.] fib(" + message + ")");
                response += fib(n);
            } catch (RuntimeException e) {
                System.out.println(" [.] " + e);
            } finally {
                channel.basicPublish("", delivery.getProperties().getReplyTo(), replyProps, response.getBytes("UTF-8"));
                channel.basicAck(delivery.getEnvelope().getDeliveryTag(), false);
            }
        };

        channel.basicConsume(RPC_QUEUE_NAME, false, deliverCallback, (consumerTag -> {}));
    }
}