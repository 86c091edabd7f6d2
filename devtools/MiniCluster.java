// A one-node HDFS (NameNode + DataNode) and a one-node YARN (ResourceManager + NodeManager) in this JVM,
// from Hadoop's own hadoop-client-minicluster, for tests. devtools/minicluster.py compiles it once, runs it
// in WORK_DIR (MiniYARNCluster keeps its folders under ./target), and reads the one READY line it prints.
//
//   java -cp <classes>:<minicluster jars>:<pyspark jars>/* MiniCluster WORK_DIR CONF_DIR NM_MEMORY_MB NM_VCORES
//
// Every port is ephemeral (bound here, then reported). CONF_DIR receives core-site.xml, hdfs-site.xml and
// yarn-site.xml for a HADOOP_CONF_DIR. The JVM runs until it is killed; its shutdown hook stops YARN first
// (and with it every container) and then HDFS.

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.ChecksumFs;
import org.apache.hadoop.fs.DelegateToFileSystem;
import org.apache.hadoop.fs.FsConstants;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;

public class MiniCluster {
  public static void main(String[] args) throws Exception {
    File work = new File(args[0]).getAbsoluteFile();
    File confDir = new File(args[1]).getAbsoluteFile();
    int memoryMb = Integer.parseInt(args[2]);
    int vcores = Integer.parseInt(args[3]);
    confDir.mkdirs();

    Configuration hdfsConf = new Configuration();
    hdfsConf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, new File(work, "hdfs").getPath());
    hdfsConf.set("dfs.replication", "1");
    MiniDFSCluster dfs = new MiniDFSCluster.Builder(hdfsConf).numDataNodes(1).build();
    dfs.waitActive();
    String defaultFs = dfs.getFileSystem().getUri().toString();

    YarnConfiguration yarnConf = new YarnConfiguration();
    yarnConf.set("fs.defaultFS", defaultFs);
    // hadoop-client-minicluster has no capacity-scheduler.xml: one queue with everything
    yarnConf.set("yarn.scheduler.capacity.root.queues", "default");
    yarnConf.set("yarn.scheduler.capacity.root.default.capacity", "100");
    yarnConf.set("yarn.scheduler.capacity.root.default.maximum-capacity", "100");
    yarnConf.set("yarn.scheduler.capacity.root.default.user-limit-factor", "1");
    yarnConf.set("yarn.scheduler.capacity.root.default.state", "RUNNING");
    yarnConf.set("yarn.scheduler.capacity.root.default.acl_submit_applications", "*");
    yarnConf.set("yarn.scheduler.capacity.node-locality-delay", "-1");
    yarnConf.set(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, "128");
    yarnConf.set(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB, String.valueOf(memoryMb));
    yarnConf.set(YarnConfiguration.NM_PMEM_MB, String.valueOf(memoryMb));
    yarnConf.set(YarnConfiguration.YARN_MINICLUSTER_NM_PMEM_MB, String.valueOf(memoryMb));
    yarnConf.set(YarnConfiguration.NM_VCORES, String.valueOf(vcores));
    yarnConf.set(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_VCORES, String.valueOf(vcores));
    // As on EMR: physical memory is enforced (a container over its size is killed), virtual is not
    // (TensorFlow and the JVM reserve far more address space than they use).
    yarnConf.set(YarnConfiguration.YARN_MINICLUSTER_CONTROL_RESOURCE_MONITORING, "true");
    yarnConf.set(YarnConfiguration.NM_PMEM_CHECK_ENABLED, "true");
    yarnConf.set(YarnConfiguration.NM_VMEM_CHECK_ENABLED, "false");
    // a full test disk must not mark the only node unhealthy
    yarnConf.set("yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage", "100.0");
    // keep the containers' logs and work folders after an application ends, for the tests to read
    yarnConf.set(YarnConfiguration.DEBUG_NM_DELETE_DELAY_SEC, "600");

    MiniYARNCluster yarn = new MiniYARNCluster("sparkyfruit", 1, 1, 1);
    yarn.init(yarnConf);
    yarn.start();

    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  yarn.stop();
                  dfs.shutdown();
                }));

    Configuration config = yarn.getConfig();
    // MiniYARNCluster may return from start() before the ResourceManager has written its real port
    long deadline = System.currentTimeMillis() + 30_000;
    while (config.get(YarnConfiguration.RM_ADDRESS).endsWith(":0")) {
      if (System.currentTimeMillis() > deadline) {
        throw new IllegalStateException("the ResourceManager did not report its port");
      }
      Thread.sleep(100);
    }
    write(config, new File(confDir, "yarn-site.xml"));
    Configuration core = new Configuration(false);
    core.set("fs.defaultFS", defaultFs);
    write(core, new File(confDir, "core-site.xml"));
    Configuration hdfsSite = new Configuration(false);
    hdfsSite.set("dfs.replication", "1");
    write(hdfsSite, new File(confDir, "hdfs-site.xml"));

    Configuration node = yarn.getNodeManager(0).getConfig();
    String logDirs = node.get(YarnConfiguration.NM_LOG_DIRS);
    String webapp = config.get(YarnConfiguration.RM_WEBAPP_ADDRESS);
    System.out.println(
        "MINICLUSTER READY {\"default_fs\": \""
            + defaultFs
            + "\", \"resource_manager\": \""
            + config.get(YarnConfiguration.RM_ADDRESS)
            + "\", \"web\": \"http://"
            + webapp
            + "\", \"log_dirs\": \""
            + logDirs
            + "\", \"local_dirs\": \""
            + node.get(YarnConfiguration.NM_LOCAL_DIRS)
            + "\"}");
    System.out.flush();
    Thread.currentThread().join(); // until killed
  }

  private static void write(Configuration config, File target) throws Exception {
    try (OutputStream out = new FileOutputStream(target)) {
      config.writeXml(out);
    }
  }

  /**
   * The local file system of FileContext (LocalFs), with permissions set through java.nio. The NodeManager
   * sets the permission of every file it localizes; without Hadoop's native library (which Maven does not
   * publish, and EMR's nodes have) each is one `chmod` process: minutes for a shipped virtualenv of 50,000
   * files. The NodeManager's FileContext reads the default configuration, so minicluster.py names this
   * class in a core-site.xml on the class path (fs.AbstractFileSystem.file.impl).
   */
  public static class NioLocalFs extends ChecksumFs {
    public NioLocalFs(URI uri, Configuration conf) throws IOException, URISyntaxException {
      super(new NioRawLocalFs(conf));
    }
  }

  /** RawLocalFs over NioRawLocalFileSystem. */
  public static class NioRawLocalFs extends DelegateToFileSystem {
    NioRawLocalFs(Configuration conf) throws IOException, URISyntaxException {
      super(FsConstants.LOCAL_FS_URI, new NioRawLocalFileSystem(), conf, FsConstants.LOCAL_FS_URI.getScheme(), false);
    }

    @Override
    public int getUriDefaultPort() {
      return -1; // as RawLocalFs: no port
    }

    @Override
    public boolean isValidName(String src) {
      return true; // as RawLocalFs: any local path
    }
  }

  /** RawLocalFileSystem whose setPermission is a system call, not a process. */
  public static class NioRawLocalFileSystem extends RawLocalFileSystem {
    @Override
    public void setPermission(Path p, FsPermission permission) throws IOException {
      Files.setPosixFilePermissions(
          pathToFile(p).toPath(), PosixFilePermissions.fromString(permission.toString()));
    }
  }
}
