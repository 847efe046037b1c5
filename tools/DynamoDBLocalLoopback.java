import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

/**
 * Runs DynamoDB Local listening on one address (default 127.0.0.1) instead of all interfaces.
 *
 * <p>DynamoDB Local has no option for the bind address: its DynamoDBProxyServer creates
 * Jetty's {@code new Server(port)}, whose connector listens on 0.0.0.0. This launcher builds
 * the server exactly as DynamoDB Local's own ServerRunner does (same command-line options),
 * sets the host on the Jetty connector before starting it, then serves until stopped.
 * Used by tools/dynamodb.sh; the address can be changed with -Ddynamodb.local.host=ADDR.
 */
public final class DynamoDBLocalLoopback {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("dynamodb.local.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        if (proxy == null) {
            System.err.println("DynamoDBLocalLoopback: DynamoDB Local rejected the arguments");
            System.exit(2);
        }
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        for (Connector connector : server.getConnectors()) {
            ((ServerConnector) connector).setHost(host);
        }
        proxy.start();
        if (!server.isStarted()) {
            System.err.println("DynamoDBLocalLoopback: the server did not start (see above)");
            System.exit(1);
        }
        System.out.println("DynamoDBLocalLoopback: listening on " + host);
        proxy.join();
    }
}
