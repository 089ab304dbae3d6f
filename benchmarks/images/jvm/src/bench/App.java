package bench;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.logging.Logger;

/** A small HTTP service on the JDK's built-in server; prints a ready line once it listens. */
public final class App {
    private static final Logger LOG = Logger.getLogger(App.class.getName());

    private App() {}

    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
        List<Catalogue.Item> items;
        try (InputStream in = App.class.getResourceAsStream("/catalogue.xml")) {
            items = Catalogue.parse(in);
        }
        HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", port), 64);
        server.setExecutor(Executors.newFixedThreadPool(4));
        server.createContext("/healthz", ex -> reply(ex, "text/plain", "ok\n"));
        server.createContext("/items", ex -> reply(ex, "application/json", Catalogue.toJson(items)));
        server.createContext("/", ex -> reply(ex, "application/json",
                "{\"service\":\"jvm\",\"time\":\"" + Instant.now() + "\"}"));
        server.start();
        LOG.fine("catalogue has " + items.size() + " items");
        System.out.println("ready: listening on 0.0.0.0:" + port);
        System.out.flush();
    }

    private static void reply(HttpExchange ex, String type, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", type);
        ex.sendResponseHeaders(200, b.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(b);
        }
    }
}
