package cinegraph;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.Executors;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

/**
 * The official Neo4j Browser (the static web app of the {@code org.neo4j.client:neo4j-browser}
 * jar, on the classpath under {@code browser/}) served on 127.0.0.1 like Neo4j's own HTTP connector
 * does: {@code /browser/} is the app, {@code /} answers the app's discovery request (JSON naming
 * the Bolt address) and sends a person to {@code /browser/}. The Browser itself talks to the
 * database over Bolt (WebSocket on the Bolt port), so this server holds no credentials.
 */
final class BrowserServer {
    private static final String ROOT = "browser/";
    private static final Map<String, String> TYPES = Map.ofEntries(
            Map.entry("html", "text/html; charset=utf-8"),
            Map.entry("js", "text/javascript; charset=utf-8"),
            Map.entry("css", "text/css; charset=utf-8"),
            Map.entry("json", "application/json"),
            Map.entry("svg", "image/svg+xml"),
            Map.entry("png", "image/png"),
            Map.entry("jpg", "image/jpeg"),
            Map.entry("ico", "image/x-icon"),
            Map.entry("woff", "font/woff"),
            Map.entry("woff2", "font/woff2"),
            Map.entry("ttf", "font/ttf"),
            Map.entry("txt", "text/plain; charset=utf-8"));

    private BrowserServer() {}

    /** Serve the Browser on 127.0.0.1:{@code port}, pointing it at Bolt on {@code boltPort}. */
    static HttpServer start(int port, int boltPort, String neo4jVersion) throws IOException {
        if (BrowserServer.class.getClassLoader().getResource(ROOT + "index.html") == null) {
            throw new IOException("the neo4j-browser jar is not on the classpath");
        }
        String discovery = "{\"bolt_direct\":\"bolt://127.0.0.1:" + boltPort + "\","
                + "\"bolt_routing\":\"neo4j://127.0.0.1:" + boltPort + "\","
                + "\"neo4j_version\":\"" + neo4jVersion + "\",\"neo4j_edition\":\"community\"}";
        HttpServer http = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0);
        http.createContext("/", exchange -> {
            try (exchange) {
                handle(exchange, discovery);
            }
        });
        http.setExecutor(Executors.newFixedThreadPool(4, r -> {
            Thread t = new Thread(r, "neo4j-browser-http");
            t.setDaemon(true);
            return t;
        }));
        http.start();
        return http;
    }

    private static void handle(HttpExchange exchange, String discovery) throws IOException {
        String method = exchange.getRequestMethod();
        if (!"GET".equals(method) && !"HEAD".equals(method)) {
            send(exchange, 405, "text/plain", "method not allowed".getBytes(StandardCharsets.UTF_8));
            return;
        }
        String path = exchange.getRequestURI().getPath();
        if ("/".equals(path)) {
            String accept = exchange.getRequestHeaders().getFirst("Accept");
            if (accept != null && accept.contains("text/html")) {
                exchange.getResponseHeaders().set("Location", "/browser/");
                send(exchange, 303, "text/plain", new byte[0]);
            } else {
                send(exchange, 200, "application/json", discovery.getBytes(StandardCharsets.UTF_8));
            }
            return;
        }
        if ("/browser".equals(path)) {
            exchange.getResponseHeaders().set("Location", "/browser/");
            send(exchange, 301, "text/plain", new byte[0]);
            return;
        }
        String rel = path.startsWith("/browser/") ? path.substring("/browser/".length()) : null;
        if (rel != null && rel.isEmpty()) {
            rel = "index.html";
        }
        if (rel == null || rel.contains("..") || rel.contains("\\") || rel.startsWith("/")) {
            send(exchange, 404, "text/plain", "not found".getBytes(StandardCharsets.UTF_8));
            return;
        }
        try (InputStream in = BrowserServer.class.getClassLoader().getResourceAsStream(ROOT + rel)) {
            if (in == null) {
                send(exchange, 404, "text/plain", "not found".getBytes(StandardCharsets.UTF_8));
                return;
            }
            String ext = rel.substring(rel.lastIndexOf('.') + 1);
            send(exchange, 200, TYPES.getOrDefault(ext, "application/octet-stream"), in.readAllBytes());
        }
    }

    private static void send(HttpExchange exchange, int status, String type, byte[] body) throws IOException {
        exchange.getResponseHeaders().set("Content-Type", type);
        exchange.getResponseHeaders().set("X-Content-Type-Options", "nosniff");
        boolean head = "HEAD".equals(exchange.getRequestMethod());
        exchange.sendResponseHeaders(status, head || body.length == 0 ? -1 : body.length);
        if (!head && body.length > 0) {
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        }
    }
}
