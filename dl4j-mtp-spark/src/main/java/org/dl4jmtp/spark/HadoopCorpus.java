package org.dl4jmtp.spark;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;
import org.dl4jmtp.examples.data.Corpus;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;

/**
 * A corpus on any file system Hadoop reads ({@code hdfs://}, {@code s3a://}, {@code gs://}, {@code file://}, ...),
 * laid out as {@code train --corpus} expects it: one UTF-8 text file (one document), or a directory whose {@code .txt}
 * files (recursively, sorted by path, empty ones skipped) are one document each. Read by the driver, which tokenises
 * and packs it exactly as {@code train} does.
 */
public final class HadoopCorpus {

    private HadoopCorpus() {
    }

    /**
     * @throws IllegalArgumentException if the path does not exist, holds no non-empty text, or a file is binary or not
     *                                  valid UTF-8 (naming the file and offset)
     */
    public static Corpus read(String location, Configuration hadoop) throws IOException {
        Path path = new Path(location);
        FileSystem fs = path.getFileSystem(hadoop);
        if (!fs.exists(path)) {
            throw new IllegalArgumentException("Corpus path does not exist: " + fs.makeQualified(path)
                    + " (pass a UTF-8 text file or a directory of .txt files)");
        }
        FileStatus status = fs.getFileStatus(path);
        List<FileStatus> files = new ArrayList<>();
        if (status.isDirectory()) {
            RemoteIterator<LocatedFileStatus> it = fs.listFiles(path, true);
            while (it.hasNext()) {
                LocatedFileStatus file = it.next();
                if (file.isFile() && file.getPath().getName().toLowerCase(Locale.ROOT).endsWith(".txt")) {
                    files.add(file);
                }
            }
            files.sort(Comparator.comparing(f -> f.getPath().toUri().getPath()));
        } else {
            files.add(status);
        }
        String root = fs.makeQualified(path).toUri().getPath();
        List<Corpus.Document> documents = new ArrayList<>();
        for (FileStatus file : files) {
            if (file.getLen() > Integer.MAX_VALUE - 16) {
                throw new IllegalArgumentException(file.getPath() + " is larger than 2 GB: split it into several .txt files");
            }
            byte[] bytes = new byte[(int) file.getLen()];
            try (InputStream in = fs.open(file.getPath())) {
                int read = in.readNBytes(bytes, 0, bytes.length);
                if (read != bytes.length) {
                    throw new IOException(file.getPath() + ": read " + read + " of " + bytes.length + " bytes");
                }
            }
            String text = Corpus.decodeUtf8(bytes, file.getPath().toString());
            if (!text.isEmpty()) {
                String own = file.getPath().toUri().getPath();
                String name = status.isDirectory() && own.startsWith(root + "/") ? own.substring(root.length() + 1)
                        : file.getPath().getName();
                documents.add(new Corpus.Document(name, text));
            }
        }
        if (documents.isEmpty()) {
            throw new IllegalArgumentException("No text in " + fs.makeQualified(path)
                    + (status.isDirectory() ? " (no non-empty .txt file in this directory)" : " (the file is empty)"));
        }
        return new Corpus(path.getName().isEmpty() ? location : path.getName(), documents);
    }
}
