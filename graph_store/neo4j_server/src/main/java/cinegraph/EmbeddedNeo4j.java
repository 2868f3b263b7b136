package cinegraph;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import org.neo4j.cli.AdminTool;
import org.neo4j.cli.ExecutionContext;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.graphdb.Result;
import org.neo4j.graphdb.Transaction;
import org.neo4j.io.fs.DefaultFileSystemAbstraction;
import org.neo4j.kernel.internal.Version;

/**
 * Neo4j Community embedded with a Bolt connector on 127.0.0.1, for cinegraph's tests and local use.
 *
 * <p>Usage: {@code java -Xmx.. -cp target/classes:target/lib/* cinegraph.EmbeddedNeo4j HOME PORT PAGECACHE_MB
 * [BROWSER_PORT]}; a BROWSER_PORT other than 0 also serves Neo4j Browser there ({@link BrowserServer}).
 * Auth is always on. The password of user {@code neo4j} is read from the environment variable
 * {@code NEO4J_PASSWORD} (never from argv, which other users can see) and set on first start, while
 * the built-in default still requires a change. SIGTERM runs a shutdown hook that stops the
 * database cleanly. One line {@code READY bolt://...} on stdout marks the server as started.
 * {@code LOAD CSV} may not read local files: file URLs are refused and the import folder is an
 * empty {@code HOME/import}, so a query cannot read the server's files.
 *
 * <p>Offline work on the store files without a new JVM: while a file {@code HOME/offline.request}
 * exists the databases are shut down (one line {@code OFFLINE} says so) and the process waits; once
 * the file is removed they are opened again from disk and {@code READY ...} is printed again. The
 * JVM, its loaded classes and the Browser stay up, which spares a cold start after a bulk import.
 *
 * <p>While offline the server also runs {@code neo4j-admin} commands in this JVM, which spares the
 * importer a cold start of its own: a file {@code HOME/admin.request} holds the command's log file, its
 * Neo4j home and its arguments, one per line; the command's output goes to the log file, and its exit
 * status to {@code HOME/admin.done} (written whole, then the request is removed).
 */
public final class EmbeddedNeo4j {
    /** While this file exists in HOME the databases stay shut down (see the class comment). */
    static final String OFFLINE_REQUEST = "offline.request";
    /** A neo4j-admin command to run while offline, and where its exit status goes (see the class comment). */
    static final String ADMIN_REQUEST = "admin.request";
    static final String ADMIN_DONE = "admin.done";
    private static final long POLL_MS = 20;

    private EmbeddedNeo4j() {}

    public static void main(String[] args) throws InterruptedException, IOException {
        if (args.length != 3 && args.length != 4) {
            System.err.println("usage: EmbeddedNeo4j HOME PORT PAGECACHE_MB [BROWSER_PORT]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = Integer.parseInt(args[1]);
        long pageCacheBytes = Long.parseLong(args[2]) * 1024L * 1024L;
        int browserPort = args.length == 4 ? Integer.parseInt(args[3]) : 0;
        String password = System.getenv("NEO4J_PASSWORD");
        if (password == null || password.length() < 8) {
            System.err.println("NEO4J_PASSWORD must be set to at least 8 characters");
            System.exit(2);
        }

        Path importDir = Files.createDirectories(home.resolve("import"));
        Path offlineRequest = home.resolve(OFFLINE_REQUEST);
        for (String left : List.of(OFFLINE_REQUEST, ADMIN_REQUEST, ADMIN_DONE)) {
            Files.deleteIfExists(home.resolve(left));  // left by a client that died while the server was offline
        }
        CountDownLatch stopping = new CountDownLatch(1);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping.countDown();  // the main thread closes the databases it opened
            try {
                stopped.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "neo4j-shutdown"));
        try {
            serve(home, port, pageCacheBytes, browserPort, password, importDir, offlineRequest, stopping);
        } finally {
            System.out.println("STOPPED");
            System.out.flush();
            stopped.countDown();
        }
    }

    /** Open the databases, and close and reopen them around each offline request, until the JVM stops. */
    private static void serve(Path home, int port, long pageCacheBytes, int browserPort, String password,
            Path importDir, Path offlineRequest, CountDownLatch stopping) throws InterruptedException {
        boolean browserStarted = false;
        while (true) {
            DatabaseManagementService dbms = open(home, port, pageCacheBytes, importDir);
            setInitialPassword(dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME), password);
            if (browserPort != 0 && !browserStarted) {
                try {
                    BrowserServer.start(browserPort, port, Version.getNeo4jVersion());
                } catch (IOException e) {
                    System.err.println("cannot serve Neo4j Browser on 127.0.0.1:" + browserPort + ": " + e.getMessage());
                    dbms.shutdown();
                    Runtime.getRuntime().halt(1);  // databases closed: no shutdown hook to wait for
                }
                browserStarted = true;
                System.out.println("BROWSER http://127.0.0.1:" + browserPort + "/browser/");
            }
            System.out.println("READY bolt://127.0.0.1:" + port);
            System.out.flush();
            boolean stop = waitWhile(stopping, () -> !Files.exists(offlineRequest));
            if (!stop) {
                dbms.shutdown();
                System.out.println("OFFLINE");
                System.out.flush();
                stop = waitWhile(stopping, () -> {
                    runAdminRequest(home);
                    return Files.exists(offlineRequest);
                });
                if (!stop) {
                    continue;
                }
                dbms = null;
            }
            System.out.println("STOPPING");
            if (dbms != null) {
                dbms.shutdown();
            }
            return;
        }
    }

    /** Run the pending {@code admin.request} of {@code home}, if any (see the class comment). */
    private static void runAdminRequest(Path home) {
        Path request = home.resolve(ADMIN_REQUEST);
        if (!Files.exists(request)) {
            return;
        }
        int status;
        try {
            List<String> lines = Files.readAllLines(request, StandardCharsets.UTF_8);
            Path adminHome = Path.of(lines.get(1));
            String[] args = lines.subList(2, lines.size()).toArray(String[]::new);
            try (PrintStream log = new PrintStream(Files.newOutputStream(Path.of(lines.get(0))), true, StandardCharsets.UTF_8)) {
                try {
                    ExecutionContext ctx = new ExecutionContext(
                            adminHome, adminHome.resolve("conf"), log, log, new DefaultFileSystemAbstraction());
                    status = AdminTool.execute(ctx, args);
                } catch (RuntimeException | Error e) {  // the command's own failure, reported like neo4j-admin's
                    e.printStackTrace(log);
                    status = 1;
                }
            }
        } catch (IOException | IndexOutOfBoundsException e) {
            System.err.println("cannot run " + request + ": " + e);
            status = 2;
        }
        try {
            Path done = home.resolve(ADMIN_DONE);
            Path partial = home.resolve(ADMIN_DONE + ".tmp");
            Files.writeString(partial, Integer.toString(status), StandardCharsets.UTF_8);
            Files.move(partial, done, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            Files.deleteIfExists(request);
        } catch (IOException e) {
            System.err.println("cannot write " + home.resolve(ADMIN_DONE) + ": " + e);
        }
    }

    /** The DBMS on {@code home} with its Bolt connector on 127.0.0.1:{@code port}. */
    private static DatabaseManagementService open(Path home, int port, long pageCacheBytes, Path importDir) {
        return new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pageCacheBytes)
                .setConfig(GraphDatabaseSettings.allow_file_urls, false)
                .setConfig(GraphDatabaseSettings.load_csv_file_url_root, importDir)
                .setConfig(GraphDatabaseSettings.shutdown_transaction_end_timeout, Duration.ofSeconds(5))
                // keep a test or laptop install small: transaction logs are pruned to ~100 MB
                .setConfig(GraphDatabaseSettings.keep_logical_logs, "100M size")
                // close idle Bolt connections and their threads at once on shutdown: going offline for an
                // import would otherwise wait 5 s twice (1 s twice with a thread pool wait of 1 s)
                .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, Duration.ofSeconds(0))
                .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ZERO)
                .build();
    }

    /** Wait while {@code condition} holds; true when the JVM is stopping instead. */
    private static boolean waitWhile(CountDownLatch stopping, BooleanSupplier condition) throws InterruptedException {
        while (condition.getAsBoolean()) {
            if (stopping.await(POLL_MS, TimeUnit.MILLISECONDS)) {
                return true;
            }
        }
        return stopping.getCount() == 0;
    }

    /** Set the neo4j user's password only while it still requires a change (the first start). */
    private static void setInitialPassword(GraphDatabaseService system, String password) {
        boolean changeRequired;
        try (Transaction tx = system.beginTx(); Result users = tx.execute("SHOW USERS")) {
            changeRequired = false;
            while (users.hasNext()) {
                Map<String, Object> row = users.next();
                if ("neo4j".equals(row.get("user")) && Boolean.TRUE.equals(row.get("passwordChangeRequired"))) {
                    changeRequired = true;
                }
            }
            tx.commit();
        }
        if (changeRequired) {
            system.executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED", Map.of("password", password));
            System.out.println("initial password of user neo4j set from NEO4J_PASSWORD");
        }
    }
}
